"""Hugging Face checkpoint layouts -> our Transformer, one mapping table per model family.

A checkpoint folder holds config.json, safetensors weights (one file, or shards listed in
model.safetensors.index.json), tokenizer.json and tokenizer_config.json (special tokens, chat
template). `load_checkpoint` detects the family from config.json (model_type / architectures),
translates the config keys into a `ModelConfig`, renames the tensors with the family's table and
reads the special-token ids from the tokenizer. `save_checkpoint` writes our own "dlm_voice" layout.

Facts per family come from the public model repositories and their modeling code; the ones we
could not confirm are marked UNCONFIRMED where they are used.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field, fields
from pathlib import Path

import torch

from dlm_core.model import ModelConfig, Transformer, rope_tables
from dlm_core.tokenizer import DlmTokenizer

BUNDLED_MODEL = Path(__file__).resolve().parent / "weights" / "default"
BUNDLED_TWIN = BUNDLED_MODEL.parent / "twin"  # its autoregressive twin
# The data-v1 AR twin (11.8M, the bundled twin until data v3): the turn judge reads it (its calibration
# was fit on this model's probabilities) and its tokenizer sizes the tool data (training.tool_data).
JUDGE_TWIN = BUNDLED_MODEL.parent / "judge_twin"
MODEL_ENV = "DLM_MODEL"
OUR_MODEL_TYPE = "dlm_voice"
# RoPE tables are precomputed for max_seq_len positions; Qwen configs advertise 32k-131k, far more
# than a voice turn needs, so we cap the table unless the caller asks for more.
DEFAULT_MAX_SEQ_LEN = 8192
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja")


# ---------------------------------------------------------------------------------------------
# Tensor-name tables: our parameter name -> the checkpoint's name. "{i}" is the layer index.
# A value (name, part) means the checkpoint stores a fused matrix and ours is `part` of its rows.

LLADA_TENSORS = {  # GSAI-ML/LLaDA-8B-Instruct, LLaDA-1.5: block_type "llama" (unfused q/k/v and MLP)
    "embed.weight": "model.transformer.wte.weight",
    "layers.{i}.attn_norm.weight": "model.transformer.blocks.{i}.attn_norm.weight",
    "layers.{i}.attn.q_proj.weight": "model.transformer.blocks.{i}.q_proj.weight",
    "layers.{i}.attn.k_proj.weight": "model.transformer.blocks.{i}.k_proj.weight",
    "layers.{i}.attn.v_proj.weight": "model.transformer.blocks.{i}.v_proj.weight",
    "layers.{i}.attn.q_proj.bias": "model.transformer.blocks.{i}.q_proj.bias",
    "layers.{i}.attn.k_proj.bias": "model.transformer.blocks.{i}.k_proj.bias",
    "layers.{i}.attn.v_proj.bias": "model.transformer.blocks.{i}.v_proj.bias",
    "layers.{i}.attn.o_proj.weight": "model.transformer.blocks.{i}.attn_out.weight",
    "layers.{i}.mlp_norm.weight": "model.transformer.blocks.{i}.ff_norm.weight",
    # LLaDA's llama block computes ff_out(act(ff_proj(x)) * up_proj(x)): ff_proj is the gate.
    "layers.{i}.mlp.gate_proj.weight": "model.transformer.blocks.{i}.ff_proj.weight",
    "layers.{i}.mlp.up_proj.weight": "model.transformer.blocks.{i}.up_proj.weight",
    "layers.{i}.mlp.down_proj.weight": "model.transformer.blocks.{i}.ff_out.weight",
    "norm.weight": "model.transformer.ln_f.weight",
    "lm_head.weight": "model.transformer.ff_out.weight",
}

# OLMo's block_type "sequential": q/k/v fused in att_proj (rows q, k, v) and the SwiGLU input
# fused in ff_proj, whose first half is the value ("up") and second half the gate (OLMo's SwiGLU
# does `x, gate = x.chunk(2, -1)`). No released LLaDA checkpoint we know uses it; supported so an
# OLMo-style export loads too.
LLADA_FUSED_TENSORS = {
    **{
        k: v
        for k, v in LLADA_TENSORS.items()
        if not re.search(r"\.(q_proj|k_proj|v_proj|gate_proj|up_proj)\.", k)
    },
    "layers.{i}.attn.q_proj.weight": ("model.transformer.blocks.{i}.att_proj.weight", "q"),
    "layers.{i}.attn.k_proj.weight": ("model.transformer.blocks.{i}.att_proj.weight", "k"),
    "layers.{i}.attn.v_proj.weight": ("model.transformer.blocks.{i}.att_proj.weight", "v"),
    "layers.{i}.attn.q_proj.bias": ("model.transformer.blocks.{i}.att_proj.bias", "q"),
    "layers.{i}.attn.k_proj.bias": ("model.transformer.blocks.{i}.att_proj.bias", "k"),
    "layers.{i}.attn.v_proj.bias": ("model.transformer.blocks.{i}.att_proj.bias", "v"),
    "layers.{i}.mlp.up_proj.weight": ("model.transformer.blocks.{i}.ff_proj.weight", "first_half"),
    "layers.{i}.mlp.gate_proj.weight": ("model.transformer.blocks.{i}.ff_proj.weight", "second_half"),
}

QWEN_TENSORS = {  # Qwen2 / Qwen3 / Llama names, used by Dream, SDAR, Fast-dLLM v2 and dllm-hub A2D
    "embed.weight": "model.embed_tokens.weight",
    "layers.{i}.attn_norm.weight": "model.layers.{i}.input_layernorm.weight",
    "layers.{i}.attn.q_proj.weight": "model.layers.{i}.self_attn.q_proj.weight",
    "layers.{i}.attn.k_proj.weight": "model.layers.{i}.self_attn.k_proj.weight",
    "layers.{i}.attn.v_proj.weight": "model.layers.{i}.self_attn.v_proj.weight",
    "layers.{i}.attn.q_proj.bias": "model.layers.{i}.self_attn.q_proj.bias",
    "layers.{i}.attn.k_proj.bias": "model.layers.{i}.self_attn.k_proj.bias",
    "layers.{i}.attn.v_proj.bias": "model.layers.{i}.self_attn.v_proj.bias",
    "layers.{i}.attn.o_proj.weight": "model.layers.{i}.self_attn.o_proj.weight",
    "layers.{i}.attn.q_norm.weight": "model.layers.{i}.self_attn.q_norm.weight",
    "layers.{i}.attn.k_norm.weight": "model.layers.{i}.self_attn.k_norm.weight",
    "layers.{i}.mlp_norm.weight": "model.layers.{i}.post_attention_layernorm.weight",
    "layers.{i}.mlp.gate_proj.weight": "model.layers.{i}.mlp.gate_proj.weight",
    "layers.{i}.mlp.up_proj.weight": "model.layers.{i}.mlp.up_proj.weight",
    "layers.{i}.mlp.down_proj.weight": "model.layers.{i}.mlp.down_proj.weight",
    "norm.weight": "model.norm.weight",
    "lm_head.weight": "lm_head.weight",
}

# ---------------------------------------------------------------------------------------------
# Config-key tables: ModelConfig field -> config.json keys, first present wins.

OLMO_CONFIG_KEYS = {  # LLaDA's OLMo-style config.json
    "vocab_size": ("embedding_size", "vocab_size"),  # embedding_size = rows of wte (padded vocab)
    "dim": ("d_model",),
    "n_layers": ("n_layers",),
    "n_heads": ("n_heads",),
    "n_kv_heads": ("n_kv_heads",),
    "mlp_dim": ("mlp_hidden_size",),
    "rope_theta": ("rope_theta",),
    "norm_eps": ("rms_norm_eps", "layer_norm_eps"),
    "max_seq_len": ("max_sequence_length",),
    "tie_embeddings": ("weight_tying",),
    "qkv_bias": ("include_qkv_bias",),
}

HF_CONFIG_KEYS = {  # transformers' Llama / Qwen2 / Qwen3 config.json
    "vocab_size": ("vocab_size",),
    "dim": ("hidden_size",),
    "n_layers": ("num_hidden_layers",),
    "n_heads": ("num_attention_heads",),
    "n_kv_heads": ("num_key_value_heads",),
    "head_dim": ("head_dim",),
    "mlp_dim": ("intermediate_size",),
    "rope_theta": ("rope_theta",),
    "norm_eps": ("rms_norm_eps",),
    "max_seq_len": ("max_position_embeddings",),
    "tie_embeddings": ("tie_word_embeddings",),
    "qkv_bias": ("attention_bias",),
}


@dataclass(frozen=True)
class Family:
    name: str  # our family name (LoadedModel.family)
    model_types: tuple[str, ...]  # config.json "model_type" values, lower-cased
    architectures: tuple[str, ...]  # config.json "architectures" entries
    tensors: dict  # our parameter name -> checkpoint tensor name
    config_keys: dict  # ModelConfig field -> config.json keys
    attention: str  # attention mode of our Transformer
    logits_shift: bool = False  # output i predicts token i+1
    qk_norm: bool = False  # per-head RMSNorm on q and k (Qwen3)
    qkv_bias: bool = False  # default when config.json does not say
    tie_embeddings: bool = False  # default when config.json does not say
    block_size: int = 32  # default block length for block-causal attention
    block_size_keys: tuple[str, ...] = ("block_size", "bd_size")
    context: int | None = None  # documented context when config.json overstates it
    mask_names: tuple[str, ...] = ()  # the family's mask token strings, preferred order
    end_of_turn_names: tuple[str, ...] = ()  # the family's end-of-turn strings
    notes: tuple[str, ...] = field(default_factory=tuple)  # facts we could not confirm
    template_vars: dict = field(default_factory=dict)  # chat-template variables its authors render with


FAMILIES = (
    Family(
        name="llada",
        model_types=("llada",),
        architectures=("LLaDAModelLM",),
        tensors=LLADA_TENSORS,
        config_keys=OLMO_CONFIG_KEYS,
        attention="bidirectional",
        mask_names=("<|mdm_mask|>",),
        end_of_turn_names=("<|eot_id|>",),
        notes=(
            (
                "UNCONFIRMED: LLaDA-1.5 is assumed to share LLaDA-8B-Instruct's layout (same architecture, "
                "fine-tuned weights); its own config.json was not inspected."
            ),
        ),
    ),
    Family(
        name="dream",
        model_types=("dream",),
        architectures=("DreamModel",),
        tensors=QWEN_TENSORS,
        config_keys=HF_CONFIG_KEYS,
        attention="bidirectional",
        logits_shift=True,
        qkv_bias=True,  # Qwen2 attention always has q/k/v biases
        context=2048,  # Dream README: 2048; config says 131072
        mask_names=("<|mask|>",),
        end_of_turn_names=("<|im_end|>",),
    ),
    Family(
        name="sdar",
        model_types=("sdar",),
        architectures=("SDARForCausalLM",),
        tensors=QWEN_TENSORS,
        config_keys=HF_CONFIG_KEYS,
        attention="block_causal",
        qk_norm=True,
        block_size=4,
        mask_names=("<|MASK|>",),
        end_of_turn_names=("<|im_end|>",),
        # SDAR's reference generate loop reads logits at the block's own positions (no shift) and
        # passes block_length=4 and mask_token_id=151669 as arguments (JetAstra/SDAR README).
        notes=(
            (
                "UNCONFIRMED: SDAR's config.json was not inspected for a block-size key (we read "
                "block_size/bd_size, else 4); the mask string <|MASK|> comes from SDAR usage code "
                "that adds it with add_special_tokens."
            ),
        ),
    ),
    Family(
        name="fast_dllm_v2",
        model_types=("fast_dllm_qwen",),
        architectures=("Fast_dLLM_QwenForCausalLM",),
        tensors=QWEN_TENSORS,
        config_keys=HF_CONFIG_KEYS,
        attention="block_causal",
        logits_shift=True,  # its batch_sample shifts logits right by one before committing
        qkv_bias=True,
        block_size=32,
        mask_names=("|<MASK>|",),
        end_of_turn_names=("<|im_end|>",),
        notes=(
            (
                "UNCONFIRMED: tensor names assumed to be Qwen2's (SGLang loads the checkpoint "
                "with its Qwen2 loader); block size read from config bd_size."
            ),
        ),
    ),
    Family(
        name="bd3lm",
        model_types=("a2d-qwen3", "a2d-qwen2"),
        architectures=("A2DQwen3LMHeadModel", "A2DQwen2LMHeadModel"),
        tensors=QWEN_TENSORS,
        config_keys=HF_CONFIG_KEYS,
        attention="block_causal",
        qk_norm=True,
        block_size=32,
        mask_names=("<|mask|>",),
        end_of_turn_names=("<|im_end|>",),
        # dllm's get_tokenizer renders A2D Qwen templates with enable_thinking=False (an empty think block)
        template_vars={"enable_thinking": False},
        notes=(
            (
                "UNCONFIRMED: dllm-hub BD3LM and MDLM checkpoints share model_type a2d-qwen3; "
                "we tell them apart by 'bd3lm'/'mdlm' in the folder or _name_or_path. Block 32 "
                "is the model card's sampler default, not a config key."
            ),
        ),
    ),
    Family(
        name="a2d_mdlm",
        model_types=(),
        architectures=(),  # chosen from a2d-* by name only
        tensors=QWEN_TENSORS,
        config_keys=HF_CONFIG_KEYS,
        attention="bidirectional",
        qk_norm=True,
        mask_names=("<|mask|>",),
        end_of_turn_names=("<|im_end|>",),
        template_vars={"enable_thinking": False},
    ),
)
FAMILY_BY_NAME = {f.name: f for f in FAMILIES}
SUPPORTED = ", ".join([OUR_MODEL_TYPE] + [f.name for f in FAMILIES])


@dataclass
class LoadedModel:
    model: Transformer  # in eval mode, on the requested device and dtype
    tokenizer: DlmTokenizer
    family: str  # "dlm_voice", "llada", "dream", "sdar", "fast_dllm_v2", "bd3lm", ...
    path: Path


# ---------------------------------------------------------------------------------------------
# Finding a model


def resolve_model(spec: str | os.PathLike | None) -> Path:
    """A local checkpoint folder for `spec`: None -> $DLM_MODEL or the bundled model; an existing
    folder; else a Hugging Face hub id, downloaded when the machine is online."""
    if spec is None:
        spec = os.environ.get(MODEL_ENV) or None
    if spec is None:
        if (BUNDLED_MODEL / "config.json").is_file():
            return BUNDLED_MODEL
        raise FileNotFoundError(
            f"the bundled model is missing ({BUNDLED_MODEL} has no config.json). Reinstall the "
            f"package with its weights, set {MODEL_ENV}, or pass --model with a checkpoint folder "
            f"or a Hugging Face id such as GSAI-ML/LLaDA-8B-Instruct."
        )
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path} is not a model checkpoint: it has no config.json")
        return path
    if path.exists():
        raise FileNotFoundError(f"{path} is a file; pass the checkpoint folder that holds config.json")
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", str(spec)):
        raise FileNotFoundError(
            f"no model folder at {path}; pass an existing checkpoint folder or a Hugging Face id (owner/name)"
        )
    return _download(str(spec))


def _download(repo_id: str) -> Path:
    try:
        from huggingface_hub import snapshot_download
    except ImportError as e:
        raise FileNotFoundError(
            f"{repo_id!r} is not a local folder and huggingface_hub is not "
            f"installed: `pip install huggingface_hub`, or pass a folder"
        ) from e
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    patterns = ["*.json", "*.safetensors", "*.jinja", "*.md", "*.txt"]
    try:
        return Path(snapshot_download(repo_id, allow_patterns=patterns, local_files_only=offline))
    except Exception as e:  # network, auth, missing repo: all mean "no model here"
        raise FileNotFoundError(
            f"could not get {repo_id!r} from the Hugging Face hub ({type(e).__name__}: {e}). "
            f"Download it where you are online (`huggingface-cli download {repo_id}`) and pass "
            f"the folder, or pass another model."
        ) from e


# ---------------------------------------------------------------------------------------------
# Loading


def load_checkpoint(
    path: str | os.PathLike,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    *,
    family: str | None = None,
    max_seq_len: int | None = None,
) -> LoadedModel:
    """Load a checkpoint folder (or anything `resolve_model` accepts) as our Transformer.

    family: force a family instead of detecting it from config.json.
    max_seq_len: positions the RoPE table covers (default: the checkpoint's own, capped at
    DEFAULT_MAX_SEQ_LEN for configs that advertise more than a voice turn uses).
    """
    path = Path(path)
    if not path.is_dir():
        path = resolve_model(str(path))
    config = _read_json(path / "config.json")
    fam = _detect_family(config, path, family)
    if fam is None:
        cfg = _our_config(config)
        tensors = {name: name for name in _param_names(cfg)}
        tokenizer = DlmTokenizer.from_dir(path)
    else:
        cfg = _family_config(fam, config, max_seq_len)
        tensors = _expand_table(fam, cfg, config)
        tokenizer = DlmTokenizer.from_dir(
            path,
            prefer_mask=fam.mask_names,
            prefer_end_of_turn=fam.end_of_turn_names,
            mask_id=config.get("mask_token_id"),
            template_vars=fam.template_vars,
        )
        _check_mask_id(config, tokenizer, path)
    _check_vocab(cfg, tokenizer, path)
    if max_seq_len is not None:
        cfg.max_seq_len = max_seq_len
    model = _build(cfg, path, tensors, device, dtype)
    return LoadedModel(
        model=model, tokenizer=tokenizer, family=OUR_MODEL_TYPE if fam is None else fam.name, path=path
    )


def _read_json(file: Path) -> dict:
    if not file.is_file():
        raise FileNotFoundError(f"{file.parent} is not a model checkpoint: it has no {file.name}")
    return json.loads(file.read_text())


def _detect_family(config: dict, path: Path, forced: str | None) -> Family | None:
    """The checkpoint's Family, or None for our own layout."""
    if forced is not None:
        if forced == OUR_MODEL_TYPE:
            return None
        if forced not in FAMILY_BY_NAME:
            raise ValueError(f"unknown model family {forced!r}; supported: {SUPPORTED}")
        return FAMILY_BY_NAME[forced]
    model_type = str(config.get("model_type", "")).lower()
    architectures = set(config.get("architectures") or ())
    if model_type == OUR_MODEL_TYPE:
        return None
    for fam in FAMILIES:
        if model_type in fam.model_types or architectures & set(fam.architectures):
            if fam.name == "bd3lm":
                return _bd3lm_or_mdlm(config, path)
            return fam
    raise ValueError(
        f"{path}: model_type {config.get('model_type')!r} / architectures {sorted(architectures)} "
        f"is not a diffusion LM family we can load (supported: {SUPPORTED}). Pass a LLaDA, Dream, "
        f"SDAR, Fast-dLLM v2 or dllm-hub BD3LM checkpoint, or one saved by save_checkpoint."
    )


def _bd3lm_or_mdlm(config: dict, path: Path) -> Family:
    names = f"{path.resolve()} {config.get('_name_or_path', '')}".lower()
    if "mdlm" in names and "bd3lm" not in names:
        return FAMILY_BY_NAME["a2d_mdlm"]
    return FAMILY_BY_NAME["bd3lm"]


def _pick(config: dict, keys: tuple[str, ...]):
    for key in keys:
        if config.get(key) is not None:
            return config[key]
    return None


def _family_config(fam: Family, config: dict, max_seq_len: int | None) -> ModelConfig:
    _check_supported(fam, config)
    values = {name: _pick(config, keys) for name, keys in fam.config_keys.items()}
    if values["rope_theta"] is None:  # transformers 5 writes rope_parameters instead
        values["rope_theta"] = (config.get("rope_parameters") or {}).get("rope_theta")
    missing = [
        name
        for name in ("vocab_size", "dim", "n_layers", "n_heads", "mlp_dim", "rope_theta", "norm_eps")
        if values[name] is None
    ]
    if missing:
        keys = [fam.config_keys[m][0] if m in fam.config_keys else m for m in missing]
        raise ValueError(f"config.json lacks {keys} needed for a {fam.name} model")
    values = {k: v for k, v in values.items() if v is not None}
    values.setdefault("qkv_bias", fam.qkv_bias)
    values.setdefault("tie_embeddings", fam.tie_embeddings)
    advertised = values.pop("max_seq_len", None) or DEFAULT_MAX_SEQ_LEN
    limit = min(advertised, fam.context or advertised)
    block = _pick(config, fam.block_size_keys) or fam.block_size
    return ModelConfig(
        **values,
        attention=fam.attention,
        block_size=int(block),
        qk_norm=fam.qk_norm,
        logits_shift=fam.logits_shift,
        max_seq_len=max_seq_len or min(limit, DEFAULT_MAX_SEQ_LEN),
        extra={
            "family": fam.name,
            "model_type": config.get("model_type"),
            "max_position_embeddings": advertised,
            "mask_token_id": config.get("mask_token_id"),
            "unconfirmed": list(fam.notes),
        },
    )


def _check_supported(fam: Family, config: dict) -> None:
    """Refuse config switches our Transformer does not implement, rather than load garbage."""
    act = config.get("hidden_act") or config.get("activation_type") or "silu"
    if act not in ("silu", "swiglu"):
        raise ValueError(f"{fam.name}: activation {act!r} is not supported (SwiGLU/SiLU only)")
    scaling = config.get("rope_scaling") or (config.get("rope_parameters") or {})
    rope_type = scaling.get("rope_type") or scaling.get("type") or "default"
    if rope_type != "default":
        raise ValueError(f"{fam.name}: RoPE scaling {rope_type!r} is not supported")
    if config.get("use_sliding_window"):
        raise ValueError(f"{fam.name}: sliding-window attention is not supported")
    if fam.name == "llada":
        if config.get("include_bias") or config.get("alibi") or config.get("rope") is False:
            raise ValueError("llada: biases, ALiBi or RoPE-less variants are not supported")
        if config.get("layer_norm_type", "rms") != "rms":
            raise ValueError(f"llada: layer_norm_type {config['layer_norm_type']!r} is not supported")


def _check_mask_id(config: dict, tokenizer: DlmTokenizer, path: Path) -> None:
    declared = config.get("mask_token_id")
    if declared is not None and declared != tokenizer.special.mask:
        raise ValueError(
            f"{path}: config.json says mask_token_id {declared} but the tokenizer's mask "
            f"token has id {tokenizer.special.mask}; the tokenizer files do not match"
        )


def _check_vocab(cfg: ModelConfig, tokenizer: DlmTokenizer, path: Path) -> None:
    # The embedding may have spare rows (LLaDA pads to 126464), never fewer than the tokenizer's ids.
    if tokenizer.vocab_size > cfg.vocab_size:
        raise ValueError(
            f"{path}: the tokenizer has {tokenizer.vocab_size} tokens but the model only "
            f"{cfg.vocab_size} embedding rows; the tokenizer files do not belong to it"
        )


def _expand_table(fam: Family, cfg: ModelConfig, config: dict) -> dict:
    table = fam.tensors
    if fam.name == "llada" and config.get("block_type", "llama") == "sequential":
        table = LLADA_FUSED_TENSORS
    return {name: _source(table, name) for name in _param_names(cfg)}


def _source(table: dict, name: str):
    template = re.sub(r"^layers\.\d+\.", "layers.{i}.", name)
    if template not in table:
        raise ValueError(f"the mapping table has no entry for {template}")
    layer = re.match(r"^layers\.(\d+)\.", name)
    entry = table[template]
    fill = (lambda s: s.replace("{i}", layer.group(1))) if layer else (lambda s: s)
    return (fill(entry[0]), entry[1]) if isinstance(entry, tuple) else fill(entry)


def _param_names(cfg: ModelConfig) -> list[str]:
    """Our parameter names for this config, lm_head left out when tied to the embedding."""
    with torch.device("meta"):
        model = Transformer(cfg)
    names = [n for n, _ in model.named_parameters(remove_duplicate=True)]
    return [n for n in names if not (cfg.tie_embeddings and n == "lm_head.weight")]


class _Weights:
    """Reads tensors by name from a folder's safetensors file(s)."""

    def __init__(self, path: Path, device: str | torch.device):
        from safetensors import safe_open

        index = path / "model.safetensors.index.json"
        if index.is_file():
            weight_map = _read_json(index)["weight_map"]
        else:
            files = sorted(path.glob("*.safetensors"))
            if not files:
                hint = (
                    " (it has PyTorch .bin weights: convert them to safetensors first)"
                    if any(path.glob("*.bin"))
                    else ""
                )
                raise FileNotFoundError(f"{path} has no safetensors weights{hint}")
            weight_map = {}
            for file in files:
                with safe_open(str(file), framework="pt") as f:
                    weight_map.update({k: file.name for k in f.keys()})  # noqa: SIM118 (not a dict)
        self.weight_map = weight_map
        self.device = str(device)
        self._open = {
            file: safe_open(str(path / file), framework="pt", device=self.device)
            for file in sorted(set(weight_map.values()))
        }

    def __contains__(self, name: str) -> bool:
        return name in self.weight_map

    def get(self, name: str) -> torch.Tensor:
        return self._open[self.weight_map[name]].get_tensor(name)


def _build(cfg: ModelConfig, path: Path, tensors: dict, device, dtype) -> Transformer:
    """Make the model on the meta device, then fill it with the checkpoint's tensors."""
    with torch.device("meta"):
        model = Transformer(cfg)
    shapes = dict(model.named_parameters())
    weights = _Weights(path, device)
    missing = [
        src if isinstance(src, str) else src[0]
        for src in tensors.values()
        if (src if isinstance(src, str) else src[0]) not in weights
    ]
    if missing:
        raise ValueError(
            f"{path}: tensors missing for this layout: {missing[:4]}"
            f"{' ...' if len(missing) > 4 else ''} ({len(missing)} in all)"
        )
    state = {}
    for name, src in tensors.items():
        tensor = weights.get(src) if isinstance(src, str) else _part(weights.get(src[0]), src[1], cfg)
        if tensor.shape != shapes[name].shape:
            raise ValueError(
                f"{path}: {src} has shape {tuple(tensor.shape)}, "
                f"expected {tuple(shapes[name].shape)} for {name}"
            )
        state[name] = tensor.to(dtype=dtype)
    if cfg.tie_embeddings:
        state["lm_head.weight"] = state["embed.weight"]
    model.load_state_dict(state, strict=True, assign=True)
    if cfg.tie_embeddings:
        model.lm_head.weight = model.embed.weight
    cos, sin = rope_tables(cfg.head_dim, cfg.max_seq_len, cfg.rope_theta)
    model.rope_cos, model.rope_sin = cos.to(device), sin.to(device)
    return model.eval()


def _part(tensor: torch.Tensor, part: str, cfg: ModelConfig) -> torch.Tensor:
    """A slice of a fused checkpoint matrix (rows = output features)."""
    if part in ("first_half", "second_half"):
        half = tensor.shape[0] // 2
        return tensor[:half] if part == "first_half" else tensor[half:]
    q, kv = cfg.n_heads * cfg.head_dim, cfg.n_kv_heads * cfg.head_dim
    start, size = {"q": (0, q), "k": (q, kv), "v": (q + kv, kv)}[part]
    return tensor[start : start + size]


def _our_config(config: dict) -> ModelConfig:
    names = {f.name for f in fields(ModelConfig)}
    return ModelConfig(**{k: v for k, v in config.items() if k in names})


# ---------------------------------------------------------------------------------------------
# Saving


def save_checkpoint(
    model: Transformer, tokenizer_dir: str | os.PathLike, out_dir: str | os.PathLike, card: str | None = None
) -> Path:
    """Write `model` in our own layout ("dlm_voice") with the tokenizer files from tokenizer_dir."""
    from safetensors.torch import save_file

    tokenizer_dir, out_dir = Path(tokenizer_dir), Path(out_dir)
    if not (tokenizer_dir / "tokenizer.json").is_file():
        raise FileNotFoundError(f"{tokenizer_dir} has no tokenizer.json to copy")
    out_dir.mkdir(parents=True, exist_ok=True)
    config = {"model_type": OUR_MODEL_TYPE, **model.cfg.to_dict()}
    (out_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    state = {name: t.detach().to("cpu").contiguous() for name, t in model.state_dict().items()}
    if model.cfg.tie_embeddings:
        state.pop("lm_head.weight")  # safetensors refuses shared storage; the loader re-ties
    save_file(state, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    for name in TOKENIZER_FILES:
        if (tokenizer_dir / name).is_file() and tokenizer_dir.resolve() != out_dir.resolve():
            shutil.copyfile(tokenizer_dir / name, out_dir / name)
    if card is not None:
        (out_dir / "README.md").write_text(card)
    return out_dir
