"""Drives Feen's proxy with the official Anthropic Python SDK, changing only base_url and api_key.

Usage: anthropic_sdk.py BASE_URL FEEN_TOKEN
Prints one JSON object describing what the SDK saw; the Rust test asserts on it.
"""

import json
import sys

import anthropic


def main() -> None:
    base, token = sys.argv[1], sys.argv[2]
    client = anthropic.Anthropic(base_url=f"{base}/api/proxy", api_key=token, max_retries=0)
    messages = [{"role": "user", "content": "Hi"}]
    plain = client.messages.create(model="claude-3-5-haiku-latest", max_tokens=64, messages=messages)
    with client.messages.stream(model="claude-3-5-haiku-latest", max_tokens=64, messages=messages) as stream:
        streamed = "".join(stream.text_stream)
        final = stream.get_final_message()
    print(
        json.dumps(
            {
                "plain": plain.content[0].text,
                "plain_usage": [plain.usage.input_tokens, plain.usage.output_tokens],
                "streamed": streamed,
                "stream_usage": [final.usage.input_tokens, final.usage.output_tokens],
            }
        )
    )


if __name__ == "__main__":
    main()
