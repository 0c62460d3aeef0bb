"""Drives Feen's proxy with the official Google GenAI Python SDK, changing only base_url and api_key.

Usage: google_genai_sdk.py BASE_URL FEEN_TOKEN
Prints one JSON object describing what the SDK saw; the Rust test asserts on it.
"""

import json
import sys

from google import genai
from google.genai import types


def main() -> None:
    base, token = sys.argv[1], sys.argv[2]
    client = genai.Client(api_key=token, http_options=types.HttpOptions(base_url=f"{base}/api/proxy"))
    plain = client.models.generate_content(model="gemini-2.0-flash", contents="Hi")
    parts, last_usage = [], None
    for chunk in client.models.generate_content_stream(model="gemini-2.0-flash", contents="Hi"):
        parts.append(chunk.text or "")
        if chunk.usage_metadata is not None:
            last_usage = [chunk.usage_metadata.prompt_token_count, chunk.usage_metadata.candidates_token_count]
    print(
        json.dumps(
            {
                "plain": plain.text,
                "plain_usage": [plain.usage_metadata.prompt_token_count, plain.usage_metadata.candidates_token_count],
                "streamed": "".join(parts),
                "stream_usage": last_usage,
            }
        )
    )


if __name__ == "__main__":
    main()
