"""Checkpoint loaders: tiny checkpoints in each family's real on-disk layout, checked against the
reference architecture in `transformers` (Llama for LLaDA, Qwen2 for Dream / Fast-dLLM v2, Qwen3
for SDAR / BD3LM) with the causal mask replaced by the family's own attention pattern.

The tiny checkpoints use the families' real config.json keys, tensor names (sharded with a
model.safetensors.index.json where the real one is sharded), tokenizer files with the family's
special tokens and chat template. Only the sizes are small.
"""

from __future__ import annotations

import json

import pytest
import torch

from dlm_core import checkpoints
from dlm_core.cache import KVCache
from dlm_core.checkpoints import LoadedModel, load_checkpoint, resolve_model, save_checkpoint
from dlm_core.model import ModelConfig, Transformer

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

from testkit.hf_families import (  # noqa: E402 -- after the skips: it needs transformers
    EXPECTED_PROMPT,
    FAMILY_TOKENS,
    HEADS,
    HIDDEN,
    LAYERS,
    MLP,
    USER_MESSAGES,
    checkpoint_tensors,
    make_family_checkpoint,
    reference_mask,
    write_safetensors,
)

TOLERANCE = 1e-4  # max abs logit difference allowed against the reference, float32
SEQ_LEN = 40  # spans two 32-blocks and ten 4-blocks


@pytest.fixture(scope="module")
def family_checkpoints(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("hf")
    return {family: make_family_checkpoint(root, family) for family in FAMILY_TOKENS}


# ----------------------------------------------------------------------------------------------
# Tests


@pytest.mark.parametrize("family", list(FAMILY_TOKENS))
def test_forward_matches_reference_architecture(family_checkpoints, family):
    folder, ref, _ = family_checkpoints[family]
    loaded = load_checkpoint(folder)
    assert isinstance(loaded, LoadedModel) and loaded.family == family and loaded.path == folder
    assert not loaded.model.training
    tokens = torch.randint(0, ref.config.vocab_size, (2, SEQ_LEN), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = loaded.model(tokens)
        theirs = ref(
            input_ids=tokens, attention_mask=reference_mask(family, SEQ_LEN).expand(2, 1, -1, -1)
        ).logits
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    diff = (ours - theirs).abs().max().item()
    assert diff <= TOLERANCE, f"{family}: max abs logit difference {diff}"
    # The check can fail: plain causal attention gives different logits for these families.
    causal = ref(input_ids=tokens).logits
    assert (causal - theirs).abs().max().item() > 100 * TOLERANCE


EXPECTED_CONFIG = {  # family: attention, block size, logits shift, qk norm, qkv bias, tied, max_seq_len
    "llada": ("bidirectional", None, False, False, False, False, 4096),
    "dream": ("bidirectional", None, True, False, True, False, 2048),
    "sdar": ("block_causal", 4, False, True, False, False, checkpoints.DEFAULT_MAX_SEQ_LEN),
    "fast_dllm_v2": ("block_causal", 32, True, False, True, True, checkpoints.DEFAULT_MAX_SEQ_LEN),
    "bd3lm": ("block_causal", 32, False, True, False, True, checkpoints.DEFAULT_MAX_SEQ_LEN),
    "a2d_mdlm": ("bidirectional", None, False, True, False, True, checkpoints.DEFAULT_MAX_SEQ_LEN),
}


@pytest.mark.parametrize("family", list(FAMILY_TOKENS))
def test_config_and_special_tokens_come_from_the_checkpoint(family_checkpoints, family):
    folder, ref, tok = family_checkpoints[family]
    loaded = load_checkpoint(folder)
    cfg = loaded.model.cfg
    attention, block, shift, qk_norm, bias, tied, max_len = EXPECTED_CONFIG[family]
    assert (cfg.attention, cfg.logits_shift, cfg.qk_norm, cfg.qkv_bias, cfg.tie_embeddings) == (
        attention,
        shift,
        qk_norm,
        bias,
        tied,
    )
    if block is not None:
        assert cfg.block_size == block
    assert cfg.max_seq_len == max_len
    assert (cfg.dim, cfg.n_layers, cfg.n_heads, cfg.mlp_dim) == (HIDDEN, LAYERS, HEADS, MLP)
    assert cfg.vocab_size == ref.config.vocab_size
    assert cfg.head_dim == getattr(ref.config, "head_dim", HIDDEN // HEADS)
    if tied:
        assert loaded.model.lm_head.weight is loaded.model.embed.weight
    mask, eot, eos = FAMILY_TOKENS[family][2]
    special = loaded.tokenizer.special
    assert special.mask == tok.token_to_id(mask)
    assert special.end_of_turn == tok.token_to_id(eot)
    assert special.eos == tok.token_to_id(eos)
    assert special.end_of_turn in special.stop_ids


@pytest.mark.parametrize("family", list(FAMILY_TOKENS))
def test_chat_prompt_uses_the_family_template(family_checkpoints, family):
    folder, _, tok = family_checkpoints[family]
    loaded = load_checkpoint(folder)
    ids = loaded.tokenizer.chat_prompt(USER_MESSAGES)
    assert loaded.tokenizer.decode(ids, skip_special=False) == EXPECTED_PROMPT[family]
    # Special tokens of the template are single ids, not spelled out in bytes.
    header = "<|start_header_id|>" if family == "llada" else "<|im_start|>"
    assert tok.token_to_id(header) in ids
    assert loaded.tokenizer.decode(ids) == EXPECTED_PROMPT[family].replace(header, "").replace(
        "<|end_header_id|>", ""
    ).replace("<|eot_id|>", "").replace("<|startoftext|>", "").replace("<|im_end|>", "")


def test_block_causal_prefix_cache_is_exact(family_checkpoints):
    """SDAR: two committed 4-blocks through the KV cache give the same logits as one full pass."""
    folder, _, _ = family_checkpoints["sdar"]
    model = load_checkpoint(folder).model
    tokens = torch.randint(0, model.cfg.vocab_size, (1, 12), generator=torch.Generator().manual_seed(1))
    cache = KVCache(model.cfg.n_layers)
    with torch.no_grad():
        full = model(tokens)
        with cache.writing():
            model(tokens[:, :8], cache=cache)
        tail = model(tokens[:, 8:], cache=cache)
    assert (tail - full[:, 8:]).abs().max().item() <= TOLERANCE


def test_fused_olmo_layout_matches_unfused(family_checkpoints, tmp_path):
    """OLMo's sequential block (att_proj = q|k|v, ff_proj = up|gate) loads to the same model."""
    folder, ref, _ = family_checkpoints["llada"]
    fused = tmp_path / "llada-fused"
    fused.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (fused / name).write_bytes((folder / name).read_bytes())
    config = json.loads((folder / "config.json").read_text())
    (fused / "config.json").write_text(json.dumps({**config, "block_type": "sequential"}))
    state = checkpoint_tensors("llada", ref)
    for i in range(LAYERS):
        b = f"model.transformer.blocks.{i}."
        state[b + "att_proj.weight"] = torch.cat([state.pop(b + f"{p}_proj.weight") for p in "qkv"])
        state[b + "ff_proj.weight"] = torch.cat(
            [state.pop(b + "up_proj.weight"), state.pop(b + "ff_proj.weight")]
        )
    write_safetensors(fused, state, 1)
    tokens = torch.arange(SEQ_LEN)[None] % ref.config.vocab_size
    with torch.no_grad():
        a, b = load_checkpoint(folder).model(tokens), load_checkpoint(fused).model(tokens)
    assert torch.equal(a, b)


def test_save_then_load_round_trip(family_checkpoints, tmp_path):
    tok_dir = family_checkpoints["dream"][0]
    torch.manual_seed(0)
    cfg = ModelConfig(
        vocab_size=320,
        dim=32,
        n_layers=2,
        n_heads=4,
        n_kv_heads=2,
        mlp_dim=48,
        attention="block_causal",
        block_size=8,
        tie_embeddings=True,
        max_seq_len=256,
        qk_norm=True,
        logits_shift=True,
    )
    model = Transformer(cfg).eval()
    out = save_checkpoint(model, tok_dir, tmp_path / "ours", card="# tiny test model\n")
    assert (out / "README.md").read_text() == "# tiny test model\n"
    assert json.loads((out / "config.json").read_text())["model_type"] == "dlm_voice"
    loaded = load_checkpoint(out)
    assert loaded.family == "dlm_voice"
    assert loaded.model.cfg.to_dict() == cfg.to_dict()
    assert loaded.model.lm_head.weight is loaded.model.embed.weight
    tokens = torch.randint(0, 320, (2, 20))
    with torch.no_grad():
        assert torch.equal(loaded.model(tokens), model(tokens))
    assert loaded.tokenizer.special == load_checkpoint(tok_dir).tokenizer.special


def test_load_in_bfloat16(family_checkpoints):
    folder, _, _ = family_checkpoints["bd3lm"]
    model = load_checkpoint(folder, dtype=torch.bfloat16).model
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    logits = model(torch.zeros(1, 8, dtype=torch.long))
    assert logits.dtype == torch.float32 and torch.isfinite(logits).all()


def test_resolve_model_errors_say_what_to_do(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="existing checkpoint folder"):
        resolve_model(str(tmp_path / "no" / "such" / "model"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no config.json"):
        resolve_model(str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="huggingface-cli download"):
        resolve_model("nobody-here/not-a-real-model-xyz")


def test_resolve_model_default_and_env(family_checkpoints, monkeypatch):
    folder = family_checkpoints["sdar"][0]
    monkeypatch.setenv("DLM_MODEL", str(folder))
    assert resolve_model(None) == folder
    monkeypatch.delenv("DLM_MODEL")
    if (checkpoints.BUNDLED_MODEL / "config.json").is_file():
        assert resolve_model(None) == checkpoints.BUNDLED_MODEL
    else:
        with pytest.raises(FileNotFoundError, match="--model"):
            resolve_model(None)


def test_unknown_or_inconsistent_checkpoints_are_refused(family_checkpoints, tmp_path):
    folder = family_checkpoints["dream"][0]
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in (
        "tokenizer.json",
        "tokenizer_config.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
    ):
        (bad / name).write_bytes((folder / name).read_bytes())
    config = json.loads((folder / "config.json").read_text())

    (bad / "config.json").write_text(
        json.dumps({**config, "model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]})
    )
    with pytest.raises(ValueError, match="not a diffusion LM family"):
        load_checkpoint(bad)
    (bad / "config.json").write_text(json.dumps({**config, "mask_token_id": config["mask_token_id"] + 1}))
    with pytest.raises(ValueError, match="mask_token_id"):
        load_checkpoint(bad)
    (bad / "config.json").write_text(json.dumps({**config, "vocab_size": 10}))
    with pytest.raises(ValueError, match="embedding rows"):
        load_checkpoint(bad)
    (bad / "config.json").write_text(json.dumps({**config, "num_hidden_layers": LAYERS + 1}))
    with pytest.raises(ValueError, match="tensors missing"):
        load_checkpoint(bad)
    (bad / "config.json").write_text(json.dumps({**config, "rope_scaling": {"type": "yarn", "factor": 4}}))
    with pytest.raises(ValueError, match="RoPE scaling"):
        load_checkpoint(bad)
    with pytest.raises(ValueError, match="unknown model family"):
        load_checkpoint(folder, family="gpt9")
