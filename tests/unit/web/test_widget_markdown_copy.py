"""The widget carries the Markdown renderer inline (it must stay one script tag); the console
loads web/markdown.js. Both must be the same code, so a fix in one reaches the other."""

from __future__ import annotations

from pathlib import Path

WEB = Path(__file__).resolve().parents[3] / "web"
BEGIN = "/* markdown.js begin */\n"
END = "/* markdown.js end */\n"


def test_widget_embeds_the_console_markdown_renderer_unchanged() -> None:
    # GIVEN the renderer's source and the widget
    source = (WEB / "markdown.js").read_text(encoding="utf-8")
    widget = (WEB / "widget.js").read_text(encoding="utf-8")
    # WHEN the copy between the widget's markers is taken out
    assert widget.count(BEGIN) == 1 and widget.count(END) == 1
    copy = widget.split(BEGIN, 1)[1].split(END, 1)[0]
    # THEN it is byte for byte web/markdown.js (after editing web/markdown.js, paste it between
    # the markers in web/widget.js)
    assert copy == source


def test_console_page_loads_the_renderer_before_the_console() -> None:
    page = (WEB / "console.html").read_text(encoding="utf-8")
    renderer = page.index('<script src="/web/markdown.js"></script>')
    assert renderer < page.index('<script src="/web/console.js"></script>')


def test_no_model_text_reaches_inner_html() -> None:
    # The renderer builds nodes; it never hands a string to the HTML parser.
    source = (WEB / "markdown.js").read_text(encoding="utf-8")
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write",
                 "DOMParser", "createContextualFragment", "eval(", "Function("):
        assert sink not in source, sink
