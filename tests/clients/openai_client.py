"""The official `openai` Python client against zhiku's /v1: models, chat (non-stream and
stream, with usage), embeddings, and an error. Run by tests/openai.rs with
ZHIKU_BASE_URL, ZHIKU_KEY and ZHIKU_BOT set; exits non-zero with the reason on failure."""
import os
import sys

import openai

base_url = os.environ["ZHIKU_BASE_URL"]
key = os.environ["ZHIKU_KEY"]
bot = os.environ["ZHIKU_BOT"]
embedding_model = os.environ["ZHIKU_EMBEDDING_MODEL"]
client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=300)

models = [m.id for m in client.models.list().data]
assert bot in models, f"bot {bot} not in /v1/models: {models}"
assert embedding_model in models, models

reply = client.chat.completions.create(
    model=bot,
    messages=[{"role": "user", "content": "出差住宿标准是多少？"}],
    max_tokens=24,
)
choice = reply.choices[0]
assert choice.message.role == "assistant"
assert choice.message.content, reply
assert choice.finish_reason in ("stop", "length"), choice.finish_reason
assert reply.usage.prompt_tokens > 0 and reply.usage.completion_tokens > 0, reply.usage
assert reply.model == bot
citations = reply.model_extra.get("citations")
assert isinstance(citations, list), reply.model_extra

stream = client.chat.completions.create(
    model=bot,
    messages=[
        {"role": "user", "content": "会议室能用多久？"},
        {"role": "assistant", "content": "最长四小时。"},
        {"role": "user", "content": "那住宿呢？"},
    ],
    max_tokens=24,
    stream=True,
    stream_options={"include_usage": True},
)
text, finish, usage = "", None, None
for chunk in stream:
    if chunk.usage:
        usage = chunk.usage
    for c in chunk.choices:
        text += c.delta.content or ""
        finish = c.finish_reason or finish
assert text, "the stream carried no text"
assert finish in ("stop", "length"), finish
assert usage and usage.total_tokens == usage.prompt_tokens + usage.completion_tokens, usage

vectors = client.embeddings.create(model=embedding_model, input=["出差住宿标准", "会议室"])
assert len(vectors.data) == 2 and len(vectors.data[0].embedding) == 384, vectors
assert vectors.usage.prompt_tokens > 0

try:
    client.chat.completions.create(model="no-such-bot", messages=[{"role": "user", "content": "hi"}])
except openai.NotFoundError as e:
    assert e.body and "message" in e.body, e.body
else:
    sys.exit("an unknown model was answered")

try:
    openai.OpenAI(base_url=base_url, api_key="zk-wrong", max_retries=0).models.list()
except openai.AuthenticationError:
    pass
else:
    sys.exit("a wrong key was accepted")

print("openai client: all checks passed")
