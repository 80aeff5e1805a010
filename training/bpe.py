"""A small byte-level BPE tokenizer with real special tokens and a Jinja chat template.

Saved in the Hugging Face layout (tokenizer.json + tokenizer_config.json) that
`dlm_core.tokenizer.DlmTokenizer.from_dir` reads.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from assistant.tools.builtin import BUILTIN_TOOLS
from dlm_core.tool_calls import DLM_VOICE_TEMPLATE, known_tools_template

PAD, MASK, EOT = "<|pad|>", "<|mdm_mask|>", "<|eot_id|>"
ROLES = {"system": "<|system|>", "user": "<|user|>", "assistant": "<|assistant|>"}
SPECIAL_TOKENS = [PAD, MASK, EOT, *ROLES.values()]  # ids 0.. in this order

# Each turn is "<|role|>text<|eot_id|>"; the generation prompt opens the assistant's turn. With tools, the
# system turn lists them one per line, and calls are <tool_call>{...}</tool_call> (dlm_core.tool_calls).
CHAT_TEMPLATE = DLM_VOICE_TEMPLATE
# The template of the models trained on training/data.py's data since data v2: they know the built-in
# tools by heart, so the tool list holds only a client's own functions (dlm_core.tool_calls).
KNOWN_TOOLS_CHAT_TEMPLATE = known_tools_template(BUILTIN_TOOLS)


def train_bpe(texts: Iterable[str], vocab_size: int) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    # One token per digit (data v3): a small model copies "1627" from a request or a tool's result
    # digit by digit, where merged digit groups ("16", "27") made it misread and garble numbers.
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        min_frequency=2,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    return tok


def save_tokenizer(tok: Tokenizer, out_dir: str | Path, template: str = CHAT_TEMPLATE) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok.save(str(out / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "mask_token": MASK,
        "eos_token": EOT,
        "eot_token": EOT,
        "pad_token": PAD,
        "bos_token": None,
        "model_max_length": 512,
        "additional_special_tokens": list(ROLES.values()),
        "chat_template": template,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    return out
