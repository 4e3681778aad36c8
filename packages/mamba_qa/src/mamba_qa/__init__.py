"""Mamba question answering for squad-qa (supervised fine-tuning, k-shot prompts, synthetic negatives, LoRA)."""
