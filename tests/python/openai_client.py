"""Drives a Journey gateway with the official `openai` SDK; prints one JSON object of results.

usage: openai_client.py BASE_URL
Each scenario's outcome is recorded; the Rust test asserts on them.
"""
import json
import sys

import openai

base = sys.argv[1]
client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=120)
model = client.models.list().data[0].id
out = {"model": model}

chat = client.chat.completions.create(
    model=model, messages=[{"role": "user", "content": "What is 2+2?"}], max_tokens=12, temperature=0
)
out["chat"] = {
    "text": chat.choices[0].message.content,
    "finish_reason": chat.choices[0].finish_reason,
    "usage": chat.usage.model_dump(),
    "object": chat.object,
}

parts, usage, finish = [], None, None
stream = client.chat.completions.create(
    model=model,
    messages=[{"role": "user", "content": "What is 2+2?"}],
    max_tokens=12,
    temperature=0,
    stream=True,
    stream_options={"include_usage": True},
)
for chunk in stream:
    if chunk.usage:
        usage = chunk.usage.model_dump()
    for c in chunk.choices:
        if c.delta.content:
            parts.append(c.delta.content)
        if c.finish_reason:
            finish = c.finish_reason
out["chat_stream"] = {"text": "".join(parts), "finish_reason": finish, "usage": usage}

comp = client.completions.create(model=model, prompt="The capital of France is", max_tokens=8, temperature=0)
out["completion"] = {
    "text": comp.choices[0].text,
    "finish_reason": comp.choices[0].finish_reason,
    "usage": comp.usage.model_dump(),
}

parts, usage = [], None
for chunk in client.completions.create(
    model=model,
    prompt="The capital of France is",
    max_tokens=8,
    temperature=0,
    stream=True,
    stream_options={"include_usage": True},
):
    if chunk.usage:
        usage = chunk.usage.model_dump()
    for c in chunk.choices:
        parts.append(c.text)
out["completion_stream"] = {"text": "".join(parts), "usage": usage}

try:
    client.chat.completions.create(model=model, messages=[], max_tokens=4)
    out["empty_messages"] = "accepted"
except openai.BadRequestError as e:
    out["empty_messages"] = {"status": e.status_code, "message": str(e)}

print(json.dumps(out))
