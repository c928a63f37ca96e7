"""Tool calling with the official `openai` Python client against zhiku's /v1: a named
tool called (not streamed), its result sent back and answered, and a required call
streamed as OpenAI streams one. Run by tests/openai.rs with ZHIKU_BASE_URL, ZHIKU_KEY
and ZHIKU_BOT set; exits non-zero with the reason on failure."""
import json
import os

import openai

client = openai.OpenAI(
    base_url=os.environ["ZHIKU_BASE_URL"], api_key=os.environ["ZHIKU_KEY"], max_retries=0, timeout=300
)
bot = os.environ["ZHIKU_BOT"]
tools = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the current weather in a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string", "description": "City name"}},
                "required": ["city"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "description": "Get the current time in a time zone.",
            "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]},
        },
    },
]
question = {"role": "user", "content": "What is the weather in Paris now?"}

reply = client.chat.completions.create(
    model=bot,
    messages=[question],
    tools=tools,
    tool_choice={"type": "function", "function": {"name": "get_weather"}},
    max_tokens=64,
)
choice = reply.choices[0]
assert choice.finish_reason == "tool_calls", reply
calls = choice.message.tool_calls
assert calls and calls[0].function.name == "get_weather", reply
arguments = json.loads(calls[0].function.arguments)
assert isinstance(arguments.get("city"), str) and arguments["city"], arguments
assert calls[0].id.startswith("call_"), calls[0].id
print("called:", calls[0].function.name, arguments)

answer = client.chat.completions.create(
    model=bot,
    messages=[
        question,
        {"role": "assistant", "content": None, "tool_calls": [c.model_dump() for c in calls]},
        {"role": "tool", "tool_call_id": calls[0].id, "content": json.dumps({"city": arguments["city"], "weather": "sunny", "temperature_c": 21})},
    ],
    tools=tools,
    # Small models given the tools again mostly call the same one again.
    tool_choice="none",
    max_tokens=64,
)
text = answer.choices[0].message.content
assert answer.choices[0].finish_reason in ("stop", "length"), answer
assert text and not answer.choices[0].message.tool_calls, answer
print("answered:", text)

stream = client.chat.completions.create(
    model=bot,
    messages=[{"role": "user", "content": "What time is it in Tokyo?"}],
    tools=tools,
    tool_choice="required",
    parallel_tool_calls=False,
    max_tokens=64,
    stream=True,
)
streamed, finish = {}, None
for chunk in stream:
    for c in chunk.choices:
        finish = c.finish_reason or finish
        for delta in c.delta.tool_calls or []:
            call = streamed.setdefault(delta.index, {"id": None, "name": "", "arguments": ""})
            call["id"] = delta.id or call["id"]
            if delta.function:
                call["name"] += delta.function.name or ""
                call["arguments"] += delta.function.arguments or ""
assert finish == "tool_calls", finish
assert len(streamed) == 1, streamed
call = streamed[0]
assert call["id"] and call["name"] in ("get_weather", "get_time"), call
json.loads(call["arguments"])
print("streamed:", call)

try:
    client.chat.completions.create(
        model=bot, messages=[question], tools=tools, tool_choice={"type": "function", "function": {"name": "nope"}}
    )
except openai.BadRequestError as e:
    assert "nope" in str(e), e
else:
    raise SystemExit("a tool_choice naming no given tool was accepted")

print("openai tools: all checks passed")
