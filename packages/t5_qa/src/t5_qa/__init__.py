"""T5 text-to-text question answering for squad-qa (full fine-tuning, LoRA, INT8, QLoRA as presets)."""
