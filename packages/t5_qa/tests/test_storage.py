"""The weight-size figures logged for quantized T5s: quantized layers and whole model against float32, read from
safetensors headers in the layouts bitsandbytes and dynamic INT8 save."""

import torch
from safetensors.torch import save_file

from t5_qa.quantization import quantize_dynamic_int8, save_dynamic_int8, weight_storage


def test_bitsandbytes_layouts_count_packed_4bit_and_int8_weights_with_their_statistics(tmp_path):
    # As transformers 5 saves them: NF4 (double quantization) packs two values a byte, LLM.int8() keeps int8 and
    # a row scale (SCB); the embedding and T5's wo stay unquantized, here in bfloat16.
    tensors = {
        "encoder.q.weight": torch.zeros(2048, 1, dtype=torch.uint8),  # a 64 x 64 weight, 4 bits each
        "encoder.q.weight.absmax": torch.zeros(64, dtype=torch.uint8),
        "encoder.q.weight.nested_absmax": torch.zeros(1),
        "encoder.q.weight.quant_map": torch.zeros(16),
        "encoder.q.weight.nested_quant_map": torch.zeros(256),
        "encoder.q.weight.quant_state.bitsandbytes__nf4": torch.zeros(165, dtype=torch.uint8),
        "decoder.k.weight": torch.zeros(64, 64, dtype=torch.int8),
        "decoder.k.SCB": torch.zeros(64),
        "decoder.k.weight_format": torch.zeros((), dtype=torch.uint8),
        "encoder.wo.weight": torch.zeros(64, 128, dtype=torch.bfloat16),
        "shared.weight": torch.zeros(300, 64, dtype=torch.bfloat16),
    }
    (tmp_path / "base").mkdir()
    save_file(tensors, str(tmp_path / "base" / "model.safetensors"))
    sizes = weight_storage(tmp_path)
    statistics_4bit = 64 + 4 + 16 * 4 + 256 * 4 + 165
    assert sizes["quantized_weight_bytes"] == 2048 + statistics_4bit + 64 * 64 + 64 * 4 + 1
    assert sizes["quantized_weight_fp32_bytes"] == 2 * 64 * 64 * 4
    assert sizes["weight_bytes"] == sizes["quantized_weight_bytes"] + 2 * (64 * 128 + 300 * 64)
    assert sizes["weight_fp32_bytes"] == 4 * (2 * 64 * 64 + 64 * 128 + 300 * 64)


def test_dynamic_int8_weights_are_a_quarter_of_float32_plus_their_scales(tmp_path):
    from transformers import AutoModelForSeq2SeqLM, T5Config

    config = T5Config(vocab_size=300, d_model=64, d_ff=128, d_kv=16, num_layers=1, num_heads=4,
                      decoder_start_token_id=0)
    module, count = quantize_dynamic_int8(AutoModelForSeq2SeqLM.from_config(config))
    save_dynamic_int8(module, tmp_path)
    sizes = weight_storage(tmp_path)
    # 12 attention projections (encoder 4, decoder self 4 and cross 4) of 64 x 64 and two wi/wo pairs of 64 x 128;
    # the lm_head is tied to the embedding and stays float
    linear_values, rows = 12 * 64 * 64 + 2 * (64 * 128 + 128 * 64), 12 * 64 + 2 * (128 + 64)
    assert count == 12 + 4
    assert sizes["quantized_weight_fp32_bytes"] == 4 * linear_values
    # int8 values plus a float32 scale and an int32 zero point per output row: 1/4 of float32 and that overhead
    assert sizes["quantized_weight_bytes"] == linear_values + 8 * rows
    assert sizes["weight_bytes"] < sizes["weight_fp32_bytes"]
