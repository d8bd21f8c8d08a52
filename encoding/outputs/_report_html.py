"""Render the report's sections as one self-contained HTML page (figures linked, side by side)."""
import html
import re

import numpy as np

from ._report_text import SECTION_TEXT

#: past this many columns a table may be wider than the page: its caption says it scrolls sideways
WIDE_TABLE_COLUMNS = 10

# Wide tables scroll inside their box; overlay scrollbars (macOS, phones) hide that they do, so a shadow marks
# an edge with more columns behind it, headers wrap at underscores (the values do not) and a note under the
# caption counts the columns.
STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1300px;
       padding: 0 1.5em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; border-bottom: 2px solid #333; padding-bottom: .2em; }
h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ccc; padding-bottom: .15em; }
nav a { margin-right: 1em; font-size: .9em; }
.demo { background: #fff4d6; border-left: 4px solid #e0a800; padding: .6em 1em; }
.table-wrap { max-width: 100%; overflow: auto; max-height: 32em; margin: .5em 0 1.2em;
              background: linear-gradient(to right, #fff 30%, rgba(255,255,255,0)) left / 2em 100% no-repeat local,
                          linear-gradient(to left, #fff 30%, rgba(255,255,255,0)) right / 2em 100% no-repeat local,
                          radial-gradient(farthest-side at 0 50%, rgba(0,0,0,.25), transparent) left / .8em 100%
                          no-repeat scroll,
                          radial-gradient(farthest-side at 100% 50%, rgba(0,0,0,.25), transparent) right / .8em 100%
                          no-repeat scroll; }
table { border-collapse: collapse; font-size: .82em; font-variant-numeric: tabular-nums; }
th { position: sticky; top: 0; background: #f0f0f0; white-space: normal; vertical-align: bottom; }
td { white-space: nowrap; }
th, td { border: 1px solid #ddd; padding: .2em .5em; text-align: right; }
.scroll-note { font-size: .75em; color: #777; }
td:first-child, th:first-child { text-align: left; }
.caption { font-family: monospace; font-size: .85em; color: #555; margin-bottom: .2em; }
.figures { display: flex; flex-wrap: wrap; gap: 1em; }
.figures figure { margin: 0; flex: 1 1 560px; max-width: 100%; }
.figures img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: .75em; color: #666; font-family: monospace; }
pre { background: #f7f7f7; padding: 1em; overflow-x: auto; font-size: .8em; }
code { background: #f3f3f3; padding: 0 .2em; }
"""


def _inline(text):
    """Escape, then `code`, **bold** and *emphasis* as in the Markdown report (no asterisk is left)."""
    text = html.escape(text)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    text = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", text)
    return re.sub(r"(?<![\w*])\*([^*\s][^*]*?)\*(?![\w*])", r"<em>\1</em>", text)


def _cell(value):
    if isinstance(value, (float, np.floating)):
        return "–" if not np.isfinite(value) else f"{value:.3g}"
    return html.escape(str(value))


def _header(name):
    """A column name that may wrap after its underscores: long names, not the numbers, made tables too wide."""
    return html.escape(str(name)).replace("_", "_<wbr>")


def _table(caption, frame):
    head = "".join(f"<th>{_header(c)}</th>" for c in frame.columns)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>"
                   for row in frame.itertuples(index=False))
    note = (f'<div class="scroll-note">{len(frame.columns)} columns: scroll sideways for all of them</div>'
            if len(frame.columns) > WIDE_TABLE_COLUMNS else "")
    return (f'<div class="caption">{html.escape(caption)}</div>{note}<div class="table-wrap"><table><thead><tr>'
            f"{head}</tr></thead><tbody>{body}</tbody></table></div>")


def _anchor(title):
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def _section(section):
    parts = [f'<h2 id="{_anchor(section.title)}">{html.escape(section.title)}</h2>']
    if section.title in ("What was asked", "Data and methods", "Files"):
        parts.append("<ul>" + "".join(f"<li>{_inline(t)}</li>" for t in section.text) + "</ul>")
    else:
        parts += [f"<p>{_inline(t)}</p>" for t in section.text]
    parts += [_table(caption, frame) for caption, frame in section.tables if frame is not None and len(frame)]
    if section.images:
        parts.append('<div class="figures">' + "".join(
            f'<figure><a href="{html.escape(i)}"><img src="{html.escape(i)}" alt="{html.escape(i)}" '
            f'loading="lazy"></a><figcaption>{html.escape(i)}</figcaption></figure>' for i in section.images)
            + "</div>")
    return "\n".join(parts)


def render_html(title, demo, sections, config_text, versions):
    """The whole page as a string."""
    nav = " ".join(f'<a href="#{_anchor(s.title)}">{html.escape(s.title)}</a>' for s in sections)
    body = [f"<h1>{html.escape(title)}</h1>"]
    if demo:
        body.append(f'<p class="demo">{_inline(SECTION_TEXT["demo"])}</p>')
    body.append(f"<nav>{nav} <a href=\"#config-and-versions\">Config and versions</a></nav>")
    body += [_section(s) for s in sections]
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>" for k, v in versions.items())
    body.append('<h2 id="config-and-versions">Config and versions</h2>'
                f"<div class=\"table-wrap\"><table><tbody>{rows}</tbody></table></div>"
                f"<pre>{html.escape(config_text)}</pre>")
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
