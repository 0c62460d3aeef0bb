"""Drives Feen's proxy with the official OpenAI Python SDK, changing only base_url and api_key.

Usage: openai_sdk.py BASE_URL FEEN_TOKEN
Prints one JSON object describing what the SDK saw; the Rust test asserts on it.
"""

import json
import sys

import openai
from openai import OpenAI


def main() -> None:
    base, token = sys.argv[1], sys.argv[2]
    client = OpenAI(base_url=f"{base}/api/proxy/v1", api_key=token, max_retries=0)
    messages = [{"role": "user", "content": "Hi"}]

    plain = client.chat.completions.create(model="gpt-4o-mini", messages=messages)

    parts, stream_usage = [], None
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=messages,
        stream=True,
        stream_options={"include_usage": True},
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            parts.append(chunk.choices[0].delta.content)
        if chunk.usage is not None:
            stream_usage = [chunk.usage.prompt_tokens, chunk.usage.completion_tokens]

    limited = None
    try:
        client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    except openai.RateLimitError as err:
        limited = {
            "status": err.status_code,
            "code": err.code,
            "retry_after": err.response.headers.get("retry-after"),
        }

    print(
        json.dumps(
            {
                "plain": plain.choices[0].message.content,
                "plain_usage": [plain.usage.prompt_tokens, plain.usage.completion_tokens],
                "streamed": "".join(parts),
                "stream_usage": stream_usage,
                "limited": limited,
            }
        )
    )


if __name__ == "__main__":
    main()
