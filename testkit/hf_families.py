"""Tiny checkpoints in each real family's on-disk layout, for loader and decoding tests.

`make_family_checkpoint(root, family)` writes config.json with the family's real key names,
safetensors with its real tensor names (sharded where the real one is), and tokenizer files with
its special tokens and chat template; only the sizes are small. The weights come from the
`transformers` reference architecture of the family (Llama for LLaDA, Qwen2 for Dream and
Fast-dLLM v2, Qwen3 for SDAR and BD3LM), seeded, so the same call writes the same checkpoint.
tests/test_checkpoints.py checks our loader against those references; tests/test_faithful.py and
tests/goldens/ use the same checkpoints to compare decoding with the authors' code.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import tokenizers
import torch
import transformers

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
# Qwen2.5's template (Dream's default system turn): tools go in the system turn as JSON lines inside
# <tools></tools>, calls are <tool_call> JSON in the assistant turn, a run of tool results is one user
# turn of <tool_response> blocks.
CHATML_TEMPLATE = r"""{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are a helpful assistant.' }}
    {%- endif %}
    {{- "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
    {%- else %}
        {{- '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\n<tool_call>\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
"""  # noqa: E501 -- the authors' template, verbatim
# Qwen3's template (SDAR, the dllm-hub A2D models) without its thinking parts, which would change the
# tiny families' golden prompts: no default system turn; the tool section follows the system text.
QWEN3_TEMPLATE = r"""{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0].role == 'system' %}
        {{- messages[0].content + '\n\n' }}
    {%- endif %}
    {{- "# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0].role == 'system' %}
        {{- '<|im_start|>system\n' + messages[0].content + '<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if message.content is string %}
        {%- set content = message.content %}
    {%- else %}
        {%- set content = '' %}
    {%- endif %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) %}
        {{- '<|im_start|>' + message.role + '\n' + content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role + '\n' + content }}
        {%- if message.tool_calls %}
            {%- for tool_call in message.tool_calls %}
                {%- if (loop.first and content) or (not loop.first) %}
                    {{- '\n' }}
                {%- endif %}
                {%- if tool_call.function %}
                    {%- set tool_call = tool_call.function %}
                {%- endif %}
                {{- '<tool_call>\n{"name": "' }}
                {{- tool_call.name }}
                {{- '", "arguments": ' }}
                {%- if tool_call.arguments is string %}
                    {{- tool_call.arguments }}
                {%- else %}
                    {{- tool_call.arguments | tojson }}
                {%- endif %}
                {{- '}\n</tool_call>' }}
            {%- endfor %}
        {%- endif %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if loop.first or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
"""  # noqa: E501 -- the authors' template, verbatim

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
    if family == "llada":
        return _llada_config_json(ref.config, mask_id)
    return _qwen_config_json(family, ref.config, mask_id)


def _llada_config_json(c, mask_id: int) -> dict:
    """LLaDA's OLMo-style config.json, from a transformers Llama config `c`."""
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


def _qwen_config_json(family: str, c, mask_id: int) -> dict:
    """The Qwen2-based (Dream, Fast-dLLM v2) and Qwen3-based (SDAR, BD3LM) config.json."""
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
        sdar = {"block_size": 4, "mask_token_id": mask_id, "fuse_cross_entropy": True, "micro_forward": False}
        extra = {"skip_checkpoint": False, "debug": False, "use_deepep": False, "ep_size": 1}
        return {**qwen3, "model_type": "sdar", "architectures": ["SDARForCausalLM"], **sdar, **extra}
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


def make_family_checkpoint(root: Path, family: str, decisive: float | None = None):
    """Write the tiny `family` checkpoint under root; (folder, transformers reference, tokenizer).

    decisive: make the random model behave a little like a trained one for decoding tests: the
    final norm is scaled by this factor (so some predictions are confident enough for threshold
    rules) and the LM-head rows of [MASK] and of the padded ids are zeroed (never predicted; an
    original sampler loops forever on a model that keeps predicting [MASK])."""
    folder = root / FOLDER_NAMES[family]
    specials, tok_config, _ = FAMILY_TOKENS[family]
    tok = write_tokenizer(folder, specials, tok_config)
    vocab = tok.get_vocab_size(with_added_tokens=True) + 7  # padded embedding rows, like LLaDA's
    ref = reference(family, vocab, TIED[family])
    mask_id = tok.token_to_id(FAMILY_TOKENS[family][2][0])
    if decisive is not None:
        with torch.no_grad():
            ref.model.norm.weight.mul_(decisive)
            ref.lm_head.weight[mask_id] = 0.0
            ref.lm_head.weight[tok.get_vocab_size(with_added_tokens=True) :] = 0.0
    config = hf_config_json(family, ref, mask_id)
    if family == "dream":  # Dream's config.json names its special ids (its model needs pad_token_id)
        ids = {k: tok.token_to_id(v) for k, v in (("bos", "<|beginoftext|>"), ("eos", "<|endoftext|>"))}
        config.update(bos_token_id=ids["bos"], eos_token_id=ids["eos"], pad_token_id=ids["eos"])
        generation = {k: config[k] for k in ("bos_token_id", "eos_token_id", "pad_token_id", "mask_token_id")}
        (folder / "generation_config.json").write_text(json.dumps(generation))
    (folder / "config.json").write_text(json.dumps(config, indent=2))
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
