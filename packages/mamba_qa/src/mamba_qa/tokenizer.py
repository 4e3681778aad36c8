"""Tokenizers of mamba_qa: the hub's (GPT-NeoX BPE for state-spaces/mamba-*-hf) and the small offline one.

The tiny presets use ``tiny-bpe``, a 4,096-token byte-level BPE with GPT-NeoX's special tokens (``<|endoftext|>``
as bos, eos, unk and pad, as in mamba-130m-hf's tokenizer, ``<|padding|>`` beside it) trained on the questions and
contexts of the shipped SQuAD sample. It lives in ``mamba_qa/tiny_tokenizer`` and is rebuilt, identically, by

    python -m mamba_qa.tokenizer data/sample/train-v2.0-sample.json data/sample/validation-v2.0-sample.json
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable
from pathlib import Path

TINY_TOKENIZER_DIRECTORY = Path(__file__).resolve().parent / "tiny_tokenizer"
TOKENIZER_ALIASES = {"tiny-bpe": TINY_TOKENIZER_DIRECTORY}
END_OF_TEXT, PADDING = "<|endoftext|>", "<|padding|>"


def squad_texts(paths: Iterable[Path]) -> list[str]:
    """Every context (once) and question of official SQuAD JSON files, in file order."""
    texts: list[str] = []
    for path in paths:
        for article in json.loads(Path(path).read_text())["data"]:
            for paragraph in article["paragraphs"]:
                texts.append(paragraph["context"])
                texts.extend(qa["question"] for qa in paragraph["qas"])
    return texts


def train_byte_level_bpe(texts: list[str], vocab_size: int):
    """A byte-level BPE (GPT-NeoX's pre-tokenization and special tokens) as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[END_OF_TEXT, PADDING], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=END_OF_TEXT, eos_token=END_OF_TEXT,
                                   unk_token=END_OF_TEXT, pad_token=END_OF_TEXT)


def resolve_tokenizer_name(name: str) -> str:
    """A tokenizer alias to its directory; hub names and directories unchanged."""
    return str(TOKENIZER_ALIASES[name]) if name in TOKENIZER_ALIASES else name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="rebuild the tiny-bpe tokenizer from SQuAD JSON files")
    parser.add_argument("squad_files", nargs="+", type=Path)
    parser.add_argument("--vocab-size", type=int, default=4096)
    parser.add_argument("--output", type=Path, default=TINY_TOKENIZER_DIRECTORY)
    args = parser.parse_args(argv)
    tokenizer = train_byte_level_bpe(squad_texts(args.squad_files), args.vocab_size)
    tokenizer.save_pretrained(args.output)
    print(f"{args.output}: {len(tokenizer)} tokens")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
