"""Checkpoint loaders: tiny checkpoints in each family's real on-disk layout, checked against the
reference architecture in `transformers` (Llama for LLaDA, Qwen2 for Dream / Fast-dLLM v2, Qwen3
for SDAR / BD3LM) with the causal mask replaced by the family's own attention pattern.

The tiny checkpoints use the families' real config.json keys, tensor names (sharded with a
model.safetensors.index.json where the real one is sharded), tokenizer files with the family's
special tokens and chat template. Only the sizes are small.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from dlm_core import checkpoints
from dlm_core.cache import KVCache
from dlm_core.checkpoints import LoadedModel, load_checkpoint, resolve_model, save_checkpoint
from dlm_core.model import ModelConfig, Transformer

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

TOLERANCE = 1e-4  # max abs logit difference allowed against the reference, float32
SEQ_LEN = 40  # spans two 32-blocks and ten 4-blocks
HIDDEN, LAYERS, HEADS, KV_HEADS, MLP = 64, 2, 4, 2, 96
CORPUS = [
    "hello there, how are you today?",
    "the quick brown fox jumps over the lazy dog",
    "what time is it? it is ten past nine.",
    "I would like a cup of tea, please.",
] * 4
USER_MESSAGES = [{"role": "user", "content": "Hi there"}]

# ----------------------------------------------------------------------------------------------
# Chat templates and special tokens of each family (as their tokenizer_config.json holds them).

LLAMA3_TEMPLATE = (  # LLaDA-8B-Instruct's template: Llama-3 headers, bos before the first turn
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' "
    "+ message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
    "{% endif %}"
)
CHATML_TEMPLATE = (  # Qwen2.5 / Dream ChatML with the default system turn
    "{% if messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] "
    "+ '<|im_end|>' + '\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
QWEN3_TEMPLATE = (  # Qwen3 ChatML without a default system turn
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] "
    "+ '<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
FAMILY_TOKENS = {
    # family: (added special tokens, tokenizer_config entries, expected mask / eot / eos strings)
    "llada": (
        [
            "<|startoftext|>",
            "<|endoftext|>",
            "<|start_header_id|>",
            "<|end_header_id|>",
            "<|eot_id|>",
            "<|mdm_mask|>",
        ],
        {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "chat_template": LLAMA3_TEMPLATE},
        ("<|mdm_mask|>", "<|eot_id|>", "<|endoftext|>"),
    ),
    "dream": (
        [*QWEN_SPECIALS, "<|beginoftext|>", "<|mask|>"],
        {
            "bos_token": "<|beginoftext|>",
            "eos_token": "<|endoftext|>",
            "pad_token": "<|endoftext|>",
            "mask_token": "<|mask|>",
            "chat_template": CHATML_TEMPLATE,
        },
        ("<|mask|>", "<|im_end|>", "<|endoftext|>"),
    ),
    "sdar": (
        [*QWEN_SPECIALS, "<|MASK|>"],  # SDAR's examples add <|MASK|> without declaring it
        {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "chat_template": QWEN3_TEMPLATE},
        ("<|MASK|>", "<|im_end|>", "<|im_end|>"),
    ),
    "fast_dllm_v2": (
        [*QWEN_SPECIALS, "|<MASK>|"],
        {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "chat_template": CHATML_TEMPLATE},
        ("|<MASK>|", "<|im_end|>", "<|im_end|>"),
    ),
    "bd3lm": (
        [*QWEN_SPECIALS, "<|mask|>"],
        {
            "eos_token": "<|im_end|>",
            "pad_token": "<|endoftext|>",
            "mask_token": "<|mask|>",
            "chat_template": QWEN3_TEMPLATE,
        },
        ("<|mask|>", "<|im_end|>", "<|im_end|>"),
    ),
}
FAMILY_TOKENS["a2d_mdlm"] = FAMILY_TOKENS["bd3lm"]  # same tokenizer, bidirectional sibling
EXPECTED_PROMPT = {
    "llada": "<|startoftext|><|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\n",
    "dream": "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi there"
    "<|im_end|>\n<|im_start|>assistant\n",
    "sdar": "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
    "fast_dllm_v2": "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
    "Hi there<|im_end|>\n<|im_start|>assistant\n",
    "bd3lm": "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
    "a2d_mdlm": "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
}


def write_tokenizer(folder: Path, specials: list[str], config_entries: dict) -> tokenizers.Tokenizer:
    """A small byte-level BPE with the family's special tokens, saved as tokenizer.json +
    tokenizer_config.json the way Hugging Face repositories ship them."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator(CORPUS, trainer)
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 4096, **config_entries})
    )
    return tok


# ----------------------------------------------------------------------------------------------
# Reference models and the families' on-disk configs


def randomize(model: torch.nn.Module, seed: int) -> None:
    """Weights large enough that a wrong mapping shows (HF init leaves norms at exactly 1)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            p.copy_(1.0 + 0.1 * noise if name.endswith("norm.weight") else 0.08 * noise)


def reference(family: str, vocab: int, tie: bool):
    common = {
        "vocab_size": vocab,
        "hidden_size": HIDDEN,
        "intermediate_size": MLP,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "max_position_embeddings": 128,
        "tie_word_embeddings": tie,
    }
    if family == "llada":  # LLaDA: Llama with full attention, MHA
        cfg = transformers.LlamaConfig(
            **common, num_key_value_heads=HEADS, rms_norm_eps=1e-5, rope_theta=500000.0, attention_bias=False
        )
        model = transformers.LlamaForCausalLM(cfg)
    elif family in ("dream", "fast_dllm_v2"):
        cfg = transformers.Qwen2Config(
            **common, num_key_value_heads=KV_HEADS, rms_norm_eps=1e-6, rope_theta=1000000.0
        )
        model = transformers.Qwen2ForCausalLM(cfg)
    else:  # SDAR, BD3LM: Qwen3 with q/k norm and an explicit head_dim
        cfg = transformers.Qwen3Config(
            **common,
            num_key_value_heads=KV_HEADS,
            head_dim=32,
            rms_norm_eps=1e-6,
            rope_theta=1000000.0,
            attention_bias=False,
        )
        model = transformers.Qwen3ForCausalLM(cfg)
    model.config._attn_implementation = "sdpa"
    randomize(model, seed=sorted(FAMILY_TOKENS).index(family))
    return model.eval()


def hf_config_json(family: str, ref, mask_id: int) -> dict:
    """config.json with the real key names each family ships."""
    c = ref.config
    if family == "llada":
        return {
            "model_type": "llada",
            "architectures": ["LLaDAModelLM"],
            "block_type": "llama",
            "d_model": c.hidden_size,
            "n_layers": c.num_hidden_layers,
            "n_heads": c.num_attention_heads,
            "n_kv_heads": c.num_key_value_heads,
            "mlp_hidden_size": c.intermediate_size,
            "mlp_ratio": 4,
            "embedding_size": c.vocab_size,
            "vocab_size": c.vocab_size,
            "max_sequence_length": 4096,
            "rms_norm_eps": 1e-5,
            "rope_theta": 500000.0,
            "rope": True,
            "rope_full_precision": True,
            "alibi": False,
            "include_bias": False,
            "include_qkv_bias": False,
            "layer_norm_type": "rms",
            "activation_type": "silu",
            "weight_tying": False,
            "mask_token_id": mask_id,
            "use_cache": False,
        }
    qwen = {
        "vocab_size": c.vocab_size,
        "hidden_size": c.hidden_size,
        "intermediate_size": c.intermediate_size,
        "num_hidden_layers": c.num_hidden_layers,
        "num_attention_heads": c.num_attention_heads,
        "num_key_value_heads": c.num_key_value_heads,
        "rms_norm_eps": c.rms_norm_eps,
        "rope_theta": 1000000.0,
        "rope_scaling": None,
        "hidden_act": "silu",
        "tie_word_embeddings": c.tie_word_embeddings,
        "use_sliding_window": False,
        "torch_dtype": "bfloat16",
    }
    if family == "dream":
        return {
            **qwen,
            "model_type": "Dream",
            "architectures": ["DreamModel"],
            "max_position_embeddings": 131072,
            "mask_token_id": mask_id,
        }
    if family == "fast_dllm_v2":
        return {
            **qwen,
            "model_type": "Fast_dLLM_Qwen",
            "architectures": ["Fast_dLLM_QwenForCausalLM"],
            "max_position_embeddings": 32768,
            "bd_size": 32,
        }
    qwen3 = {**qwen, "head_dim": c.head_dim, "attention_bias": False, "max_position_embeddings": 40960}
    if family == "sdar":
        return {**qwen3, "model_type": "sdar", "architectures": ["SDARForCausalLM"], "block_size": 4}
    return {**qwen3, "model_type": "a2d-qwen3", "architectures": ["A2DQwen3LMHeadModel"]}


LLADA_RENAMES = [  # transformers' Llama names -> LLaDA's OLMo-style names
    (r"^model\.embed_tokens\.", "model.transformer.wte."),
    (r"^model\.layers\.(\d+)\.self_attn\.o_proj\.", r"model.transformer.blocks.\1.attn_out."),
    (r"^model\.layers\.(\d+)\.self_attn\.([qkv])_proj\.", r"model.transformer.blocks.\1.\2_proj."),
    (r"^model\.layers\.(\d+)\.mlp\.gate_proj\.", r"model.transformer.blocks.\1.ff_proj."),
    (r"^model\.layers\.(\d+)\.mlp\.up_proj\.", r"model.transformer.blocks.\1.up_proj."),
    (r"^model\.layers\.(\d+)\.mlp\.down_proj\.", r"model.transformer.blocks.\1.ff_out."),
    (r"^model\.layers\.(\d+)\.input_layernorm\.", r"model.transformer.blocks.\1.attn_norm."),
    (r"^model\.layers\.(\d+)\.post_attention_layernorm\.", r"model.transformer.blocks.\1.ff_norm."),
    (r"^model\.norm\.", "model.transformer.ln_f."),
    (r"^lm_head\.", "model.transformer.ff_out."),
]


def checkpoint_tensors(family: str, ref) -> dict[str, torch.Tensor]:
    state = {k: v.detach().clone().contiguous() for k, v in ref.state_dict().items()}
    if ref.config.tie_word_embeddings:
        state.pop("lm_head.weight")  # tied checkpoints (Qwen2.5-1.5B, Qwen3-0.6B) omit it
    if family != "llada":
        return state  # Dream, SDAR, Fast-dLLM v2, A2D keep the Qwen names
    renamed = {}
    for name, t in state.items():
        for pattern, repl in LLADA_RENAMES:
            if re.match(pattern, name):
                renamed[re.sub(pattern, repl, name)] = t
                break
        else:
            raise AssertionError(f"no LLaDA name for {name}")
    return renamed


def write_safetensors(folder: Path, state: dict, shards: int) -> None:
    from safetensors.torch import save_file

    if shards == 1:
        save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
        return
    names = sorted(state)
    weight_map = {}
    for s in range(shards):
        file = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        part = {n: state[n] for n in names[s::shards]}
        save_file(part, str(folder / file), metadata={"format": "pt"})
        weight_map.update({n: file for n in part})
    total = sum(t.numel() * t.element_size() for t in state.values())
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map})
    )


FOLDER_NAMES = {
    "llada": "LLaDA-8B-Instruct",
    "dream": "Dream-v0-Instruct-7B",
    "sdar": "SDAR-1.7B-Chat",
    "fast_dllm_v2": "Fast_dLLM_v2_1.5B",
    "bd3lm": "Qwen3-0.6B-diffusion-bd3lm-v0.1",
    "a2d_mdlm": "Qwen3-0.6B-diffusion-mdlm-v0.1",
}
TIED = {"llada": False, "dream": False, "sdar": False, "fast_dllm_v2": True, "bd3lm": True, "a2d_mdlm": True}
SHARDS = {"llada": 3, "dream": 2, "sdar": 1, "fast_dllm_v2": 1, "bd3lm": 1, "a2d_mdlm": 1}


def make_family_checkpoint(root: Path, family: str):
    folder = root / FOLDER_NAMES[family]
    specials, tok_config, _ = FAMILY_TOKENS[family]
    tok = write_tokenizer(folder, specials, tok_config)
    vocab = tok.get_vocab_size(with_added_tokens=True) + 7  # padded embedding rows, like LLaDA's
    ref = reference(family, vocab, TIED[family])
    mask_id = tok.token_to_id(FAMILY_TOKENS[family][2][0])
    (folder / "config.json").write_text(json.dumps(hf_config_json(family, ref, mask_id), indent=2))
    write_safetensors(folder, checkpoint_tensors(family, ref), SHARDS[family])
    return folder, ref, tok


def reference_mask(family: str, n: int) -> torch.Tensor:
    """The family's attention pattern as an additive float mask [1, 1, n, n] for transformers."""
    pos = torch.arange(n)
    block = {"sdar": 4, "fast_dllm_v2": 32, "bd3lm": 32}.get(family)
    allowed = (
        torch.ones(n, n, dtype=torch.bool)
        if block is None
        else (pos[None] // block) <= (pos[:, None] // block)
    )
    return torch.zeros(n, n).masked_fill(~allowed, torch.finfo(torch.float32).min)[None, None]


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
