"""The HTML page every report shares: one inline stylesheet, no scripts, no external URL.

It needs only the core install, so a page made without the ``report`` extra (``bench choose``'s
decision page) looks like the rest of the reports.
"""

from __future__ import annotations

import html

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem;
       color: #1f2328; max-width: 1400px; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.2rem; margin-top: 2rem;
     border-bottom: 1px solid #d0d7de; padding-bottom: .3rem; }
table { border-collapse: collapse; margin: .5rem 0 1rem; font-size: .85rem; }
th, td { border: 1px solid #d0d7de; padding: .25rem .5rem; text-align: left;
         vertical-align: top; }
th { background: #f6f8fa; }
.scroll { overflow-x: auto; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr:nth-child(even) td { background: #fafbfc; }
.ok { color: #1a7f37; } .bad { color: #cf222e; font-weight: 600; }
td.better { color: #1a7f37; font-weight: 600; } td.worse { color: #cf222e; font-weight: 600; }
td.noise { color: #6e7781; }
.banner { padding: .6rem 1rem; border-radius: 6px; margin: 1rem 0; }
.banner.pass { background: #dafbe1; border: 1px solid #1a7f37; }
.banner.fail { background: #ffebe9; border: 1px solid #cf222e; }
.banner.inconclusive, .banner.notes { background: #fff8c5; border: 1px solid #9a6700; }
details.banner summary { cursor: pointer; }
.banner ul { margin: .3rem 0; padding-left: 1.4rem; } .banner p { margin: .2rem 0; }
figure { margin: 1rem 0 2rem; } figcaption { color: #57606a; font-size: .85rem; }
img { max-width: 100%; height: auto; border: 1px solid #d0d7de; }
"""


def page(title: str, body: str) -> str:
    """A complete HTML document with the shared inline stylesheet."""
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        f"{body}\n</body>\n</html>\n"
    )
