"""The tiny presets' tokenizer: rebuilt identically from the SQuAD sample, GPT-NeoX's special tokens."""

from mamba_qa.model import load_tokenizer, stop_token_ids
from mamba_qa.tokenizer import TINY_TOKENIZER_DIRECTORY, squad_texts, train_byte_level_bpe
from qa_common.testing.contract import TRAIN_SAMPLE, VALIDATION_SAMPLE, sample_directory


def test_the_shipped_tiny_tokenizer_is_what_its_recipe_builds(tmp_path):
    sample = sample_directory()
    rebuilt = train_byte_level_bpe(squad_texts([sample / TRAIN_SAMPLE, sample / VALIDATION_SAMPLE]), 4096)
    rebuilt.save_pretrained(tmp_path)
    assert (tmp_path / "tokenizer.json").read_bytes() == (TINY_TOKENIZER_DIRECTORY / "tokenizer.json").read_bytes()


def test_the_tiny_tokenizer_has_gpt_neox_special_tokens_and_round_trips_text():
    tokenizer = load_tokenizer("tiny-bpe")
    assert len(tokenizer) == 4096 and tokenizer.is_fast
    assert tokenizer.convert_ids_to_tokens([0, 1]) == ["<|endoftext|>", "<|padding|>"]
    assert tokenizer.eos_token_id == tokenizer.pad_token_id == tokenizer.bos_token_id == 0
    text = "Beyoncé's 2016 show (Stade de France) — \"Formation\".\n\nQ: Who?\nA:"
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text
    stops = stop_token_ids(tokenizer)
    assert 0 in stops and tokenizer("\n")["input_ids"][0] in stops
    assert all("\n" in tokenizer.decode([token]) for token in stops if token != 0)
