"""bf16 error of bert_qa's packed path (PackedBertQA, varlen flash attention) against fp32, next to transformers' own
bf16 path, on a CUDA GPU: the figures of results/speed_h200_2026-12-03b/cuda_check_2450503.json.

    python3 scripts/check_packed_numerics.py      # writes $OUT/cuda_check.json (or /tmp/cuda_check.json)

Two models (a small one with a sharpened span head, and bert-base size with random weights), the tokenizer and
data of scripts/prepare_gpu_carry.sh (.data/gpu). For each: the largest start-logit error against fp32 logits of the
same bf16-rounded weights (200 questions' windows in one padded batch), and how many of 1,426 answers differ from
fp32 answers, packed and transformers bf16.
"""

import json
import os

import numpy as np
import torch

from bert_qa.fused import PackedBertQA
from qa_common.adapter import get_adapter
from qa_common.data.readers import load_squad
from qa_common.extractive import InferenceOptions, TorchRunner

tok = ".data/gpu/bert-uncased-tokenizer"
examples = load_squad(".data/gpu/validation-v2.0.json").examples
out = {}
SMALL = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 128}
for name, sizes, scale in (("small-peaked", SMALL, 40.0), ("bert-base-random", {}, 1.0)):
    adapter = get_adapter("bert_qa")
    preset = "tiny" if sizes else "random-bert-base"
    base = adapter.build(adapter.config(preset, {"tokenizer_name": tok, **sizes}))
    with torch.no_grad():
        base.module.qa_outputs.weight.mul_(scale)
    feats = base.windows(examples[:200], with_labels=False)
    idx = np.arange(len(feats))  # all 200 questions in one batch
    batch, _ = base.pack(feats, idx, int(feats.lengths().max()))
    t = {k: torch.from_numpy(v).cuda() for k, v in batch.items()}
    real = t["attention_mask"].bool()
    fp32 = base.module.cuda().eval()
    with torch.inference_mode():
        exact = fp32(**t)
        bf = fp32.to(torch.bfloat16)
        plain = bf(**t)
        runner = TorchRunner(PackedBertQA(bf), autocast=False, packed=True)
        s, e = runner.logits_tensors(batch)
    r = {"packed_runner": runner.packed,
         "packed_err": (s[real].float() - exact.start_logits[real]).abs().max().item(),
         "transformers_bf16_err": (plain.start_logits[real].float() - exact.start_logits[real]).abs().max().item(),
         "logit_range": exact.start_logits[real].abs().max().item()}
    # answers: packed bf16 vs transformers bf16 vs fp32
    m32 = adapter.build(adapter.config(preset, {"tokenizer_name": tok, **sizes}))
    m32.module.load_state_dict({k: v.float() for k, v in bf.state_dict().items()})
    m32.to("cuda")
    m32.configure_inference(InferenceOptions(precision="fp32", packed=False, max_batch_tokens=32768))
    p32 = m32.predict(examples, batch_size=64)
    base.to("cuda")
    base.configure_inference(InferenceOptions(packed=True, max_batch_tokens=32768))
    pk = base.predict(examples, batch_size=64)
    base.configure_inference(InferenceOptions(packed=False, max_batch_tokens=32768))
    hf = base.predict(examples, batch_size=64)
    r["differ_packed_vs_fp32"] = sum(pk[q].text != p32[q].text for q in p32)
    r["differ_transformers_bf16_vs_fp32"] = sum(hf[q].text != p32[q].text for q in p32)
    r["differ_packed_vs_transformers_bf16"] = sum(hf[q].text != pk[q].text for q in p32)
    out[name] = r
    print(name, json.dumps(r), flush=True)
open(os.path.join(os.environ.get("OUT", "/tmp"), "cuda_check.json"), "w").write(json.dumps(out, indent=1))
