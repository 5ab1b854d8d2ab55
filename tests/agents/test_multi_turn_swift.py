"""The ``tools`` scheduler inside ms-swift's own multi-turn loops, with scripted model turns, and the loss mask
ms-swift actually trains on.

What is real: ms-swift 4.6's colocate loop (``swift.rollout.agent_loop.run_multi_turn``, the function
``RolloutTrainerMixin._colocate_multi_turn_infer`` calls), its server-mode loop (``MultiTurnScheduler.run``), the
scheduler class registered into ``multi_turns``, the tools (the calculator; the python tool in the code sandbox),
the tiny Qwen3 tokenizer and template (hermes agent template), and the trainer's encoding
(``rlhf_trainers/utils.py`` ``encode_sample`` + ``collate_to_grpo_micro_batch``: the ``labels`` and
``completion_mask`` the GRPO loss uses). What is scripted: the model's text (a stand-in for generation, so the turns
are known); the tokens are the tokenizer's encoding of that text, as the engine would report them.
"""

import asyncio
import json

import pytest

from swift_ext.rewards import build
from swift_ext.testing import tiny

swift = pytest.importorskip("swift")


def call(name, **arguments):
    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>"


@pytest.fixture(scope="module")
def template():
    from swift import get_processor, get_template

    model = tiny.ensure("text")
    proc = get_processor(model.path, model_type=model.model_type, download_model=False)
    tpl = get_template(proc, template_type=model.template, agent_template="hermes")
    tpl.set_mode("train")
    return tpl


def _response(tok, text, finish="stop"):
    from swift.infer_engine.protocol import (ChatCompletionResponse, ChatCompletionResponseChoice, ChatMessage,
                                             UsageInfo)

    ids = tok.encode(text, add_special_tokens=False) + [tok.convert_tokens_to_ids("<|im_end|>")]  # as generated
    return ChatCompletionResponse(model="tiny", usage=UsageInfo(0, len(ids), len(ids)), choices=[
        ChatCompletionResponseChoice(index=0, message=ChatMessage(role="assistant", content=text),
                                     finish_reason=finish, token_ids=ids)])


def _run_colocate(template, spec, scripts, max_turns=6, rows=None):
    """ms-swift's colocate loop on one request per script; the model's turns come from the scripts."""
    from swift.infer_engine.protocol import RequestConfig, RolloutInferRequest, RolloutOutput
    from swift.rollout.agent_loop import run_multi_turn

    from swift_ext.bridge.multi_turn import install_schedulers, get_multi_turns

    install_schedulers(spec)
    tok = template.tokenizer
    sched = get_multi_turns()[spec](max_turns=max_turns, tokenizer=tok, template=template)
    tools = sched.agent.tool_schemas()
    requests = [RolloutInferRequest(messages=[{"role": "user", "content": "Compute it."}], tools=tools, uuid=f"r{i}",
                                    data_dict=dict((rows or [{}] * len(scripts))[i]))
                for i in range(len(scripts))]
    position = {id(r): 0 for r in requests}
    by_id = {id(r): s for r, s in zip(requests, scripts)}

    def rollout_fn(reqs, cfg):
        outs = []
        for r in reqs:
            position[id(r)] += 1
            outs.append(RolloutOutput(response=_response(tok, by_id[id(r)][position[id(r)]])))
        return outs

    first = [RolloutOutput(response=_response(tok, s[0])) for s in scripts]
    outputs = run_multi_turn(requests, first, sched, rollout_fn, RequestConfig(max_tokens=128), max_turns=max_turns)
    return sched, requests, outputs


def _trained(template, output, prompt="Compute it."):
    """The sample ms-swift's trainer builds from a rollout output, encoded and collated as for the GRPO loss."""
    import torch
    from swift.rl_core.data import OnPolicySample
    from swift.rlhf_trainers.utils import collate_to_grpo_micro_batch, encode_sample

    sample = OnPolicySample(messages=[{"role": "user", "content": prompt}], request_id="r",
                            tools=[{"type": "function", "function": {"name": "calculator", "parameters": {}}}])
    sample.apply_rollout_output(rollout_output=output)
    sample.encoded = encode_sample(sample, template)
    model_inputs, batch = collate_to_grpo_micro_batch([sample], template, device=torch.device("cpu"),
                                                      use_logits_to_keep=True)
    ids, labels = model_inputs["input_ids"][0].tolist(), model_inputs["labels"][0].tolist()
    tok = template.tokenizer
    trained = tok.decode([i for i, lab in zip(ids, labels) if lab != -100])
    return sample, tok.decode(ids), trained, batch.completion_mask[0], labels


def test_colocate_loop_runs_tools_and_masks_tool_outputs_out_of_the_loss(template):
    first = call("calculator", expression="123456789 * 1000")
    answer = "So it is <answer>123456789000</answer>"
    _, _, [out] = _run_colocate(template, "tools:tools=calculator+python", [[first, answer]])
    roles = [m["role"] for m in out.messages]
    assert roles == ["user", "assistant", "tool", "assistant"]
    assert out.messages[2]["content"] == "123456789000"
    info = out.rollout_infos
    assert info["num_turns"] == 2 and info["swift_ext_agent"]["calls"] == 1 and info["swift_ext_agent"]["ok"] == 1

    sample, full, trained, completion_mask, labels = _trained(template, out)
    # the tool's output is in the sequence the model reads ...
    assert "<tool_response>\n123456789000\n</tool_response>" in full
    # ... and not in what it is trained on: exactly the two assistant turns, each ended once by <|im_end|>
    # (the sampled end of the first turn is cut: the template writes it again)
    assert trained == first + "<|im_end|>\n" + answer + "<|im_end|>"
    assert "<|im_end|><|im_end|>" not in full
    assert int(completion_mask.sum()) == sum(1 for lab in labels if lab != -100)
    assert "<tool_response>" not in trained and sample.response_loss_mask[0].count(1) > 0


def test_colocate_loop_error_turns_and_max_calls(template):
    scripts = [
        # malformed JSON, then an unknown tool, then an answer
        ['<tool_call>{"name": "calculator", "arguments": {"expression": </tool_call>', call("browser", url="x"),
         "<answer>1</answer>"],
        # over-calling: the budget (max_calls=2) is spent in the first turn, the next call ends the trajectory
        [call("calculator", expression="1") + call("calculator", expression="2") + call("calculator", expression="3"),
         call("calculator", expression="4"), "never reached"],
    ]
    _, _, (bad, spam) = _run_colocate(template, "tools:tools=calculator,max_calls=2", scripts)
    assert [m["role"] for m in bad.messages] == ["user", "assistant", "tool", "assistant", "tool", "assistant"]
    assert bad.messages[2]["content"].startswith("error: could not read the tool call")
    assert bad.messages[4]["content"] == "error: unknown tool 'browser'; available: calculator"
    assert bad.rollout_infos["swift_ext_agent"]["ok"] == 0 and bad.rollout_infos["swift_ext_agent"]["calls"] == 2
    assert [m["content"] for m in spam.messages if m["role"] == "tool"][:2] == ["1", "2"]
    assert spam.rollout_infos["swift_ext_agent"]["stop_reason"] == "max_calls"
    assert spam.rollout_infos["num_turns"] == 2

    # the trajectory rewards read what ms-swift hands them (rows built by its own to_reward_row)
    from swift.rl_core.data import OnPolicySample

    rows = []
    for out in (bad, spam):
        s = OnPolicySample(messages=[{"role": "user", "content": "Compute it."}], request_id="r",
                           extra={"solution": "1"})
        s.apply_rollout_output(rollout_output=out)
        rows.append(s.to_reward_row())
    completions = [r["messages"][-1]["content"] for r in rows]
    columns = {k: [r.get(k) for r in rows] for k in ("messages", "rollout_infos", "solution", "request_id")}
    assert build("tool_success")(completions, **columns) == [0.0, 2 / 3]
    assert build("final_answer:reward=numeric")(completions, **columns) == [1.0, 0.0]
    assert build("turn_budget:max_turns=2")(completions, **columns) == [-0.25, 0.0]


def test_python_sessions_stay_per_trajectory_in_a_batch(template):
    scripts = [[call("python", code="secret = 7"), call("python", code="print(secret * 6)"), "<answer>42</answer>"],
               [call("python", code="print(secret)"), "<answer>?</answer>"]]
    _, _, (a, b) = _run_colocate(template, "tools:tools=python", scripts)
    assert [m["content"].strip() for m in a.messages if m["role"] == "tool"] == ["(no output)", "42"]
    assert "NameError" in [m["content"] for m in b.messages if m["role"] == "tool"][0]


def test_max_turns_from_ms_swift_ends_the_trajectory(template):
    scripts = [[call("calculator", expression="1")] * 5]
    sched, _, [out] = _run_colocate(template, "tools:tools=calculator,max_calls=10", scripts, max_turns=3)
    assert out.rollout_infos["num_turns"] == 3 and out.rollout_infos["swift_ext_agent"]["stop_reason"] == "max_turns"
    assert out.rollout_infos["swift_ext_agent"]["calls"] == 2
    assert sched.agent._live == {} and sched._pending == {}      # nothing kept after the trajectory ended


def test_server_mode_loop_runs_the_same_hooks(template):
    """``swift rollout``'s path: ``MultiTurnScheduler.run`` with an engine (a scripted stand-in for vLLM, which
    cannot run here) awaited turn by turn."""
    from swift.infer_engine.protocol import RequestConfig, RolloutInferRequest

    from swift_ext.bridge.multi_turn import scheduler_class

    tok = template.tokenizer
    turns = iter([call("calculator", expression="2**5"), "<answer>32</answer>"])

    class Engine:
        tokenizer = tok

        async def infer_async(self, request, config, **kwargs):
            return _response(tok, next(turns))

    sched = scheduler_class("tools:tools=calculator")(infer_engine=Engine(), max_turns=4, tokenizer=tok,
                                                      template=template)
    req = RolloutInferRequest(messages=[{"role": "user", "content": "2^5?"}], uuid="s1")
    out = asyncio.run(sched.run(req, RequestConfig(max_tokens=32)))
    assert [m["role"] for m in out.messages] == ["user", "assistant", "tool", "assistant"]
    assert out.messages[2]["content"] == "32" and out.rollout_infos["swift_ext_agent"]["ok"] == 1


def test_plugin_file_registers_the_spec_given_on_the_command_line():
    from swift_ext.bridge import install
    from swift_ext.bridge.context import RunContext
    from swift_ext.bridge.multi_turn import get_multi_turns

    spec = "tools:tools=python+calculator,max_calls=3"
    ctx = RunContext.from_argv(["--rlhf_type", "grpo", "--multi_turn_scheduler", spec, "--max_turns", "4"])
    assert ctx.multi_turn_scheduler == spec
    done = install(ctx=ctx)
    assert spec in get_multi_turns() and spec in done["multi_turns"] + [spec]
    assert get_multi_turns()[spec].spec == spec
