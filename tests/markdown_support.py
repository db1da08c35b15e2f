"""Reading back what the dashboard wrote through `escape_markdown`, as AppTest sees only the escaped string (the
browser's view of the same text: tests/test_browser.py, tests/literal_text_page.py)."""

import re


def as_read(markdown: str) -> str:
    """Text that went through `escape_markdown`, as the reader sees it: escapes dropped, the colon's entity a colon."""
    return re.sub(r"\\(.)|&#58;", lambda match: match.group(1) or ":", markdown, flags=re.DOTALL)
