"""A Streamlit page for tests/test_browser.py: each hostile text through `escape_markdown` into the kinds of
element the dashboard puts user text in (Markdown, an alert, an expander label, a progress label), so that the
browser can check what a reader sees."""

import streamlit as st

from daam_store.views.common import escape_markdown

# What a prompt, tag, model or sweep name may hold that Streamlit's Markdown would otherwise render.
HOSTILE_TEXTS = [
    "**bold** [link](x) <b>_i_</b> `code` $math$ ~~struck~~ $$x$$",
    ":smile: email:a@b.c :red[red] :material/home: :blue-background[x]",
    "# heading",
    "- item",
    "1. item",
    "1) item",
    "+ item",
    "> quote",
    "| a | b |",
    "---",
    "a &lt; b &amp; c \\ d",
    "![image](x.png) <https://x.y> www.example.com http://example.com a@b.com",
    "<!-- comment --> [^1] {braces} end\\",
    "\\\\:smile:",
]
ELEMENT_KINDS = 4  # per text, in this order: markdown, info, expander label, progress label

for text in HOSTILE_TEXTS:
    st.markdown(escape_markdown(text))
    st.info(escape_markdown(text))
    with st.expander(escape_markdown(text)):
        st.caption("hidden")
    st.progress(0.5, text=escape_markdown(text))
st.caption("end of the hostile texts")
