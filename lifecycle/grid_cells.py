"""The pipeline grid's cells as HTML, written in Python.

The grid renders thousands of cells; through the template language each costs dozens of
variable lookups, which were most of the page's time. Every value is escaped here with
`html.escape` (as the template's own autoescaping), and the markup is the one the row template had.
What the machines report (`_live_state.html`) stays a template: it is shown only for cells of
delivering environments.
"""

from __future__ import annotations

from html import escape  # What django.utils.html.escape calls, without its lazy-string wrapper's cost

from django.template.loader import get_template
from django.utils.safestring import SafeString, mark_safe


def cells_html(row) -> SafeString:
    """Every cell and gap of one grid row (`lifecycle.pipeline.Row`), after attach_live_states."""
    application = row.application
    name = application.name
    parts = []
    for kind, item in row.columns():
        if kind == "cell":
            parts.append(_cell(item, application, name))
        else:
            arrow = item.arrow(application)
            if arrow is None:
                parts.append('<td class="gap"></td>')
            else:
                url = escape(arrow["url"])
                parts.append(
                    f'<td class="gap"><a class="gap-mark" href="{url}" hx-get="{url}" '
                    f'hx-target="#dialog-body" hx-swap="innerHTML" title="{escape(arrow["title"])}">&rarr;'
                    f'<span class="visually-hidden"> {escape(arrow["text"])}</span></a></td>'
                )
    return mark_safe("".join(parts))  # noqa: S308 - every value above went through escape()


def _cell(cell, application, name: str) -> str:
    html = (
        f'<td class="{cell.css}" data-environment="{escape(cell.environment.name)}" '
        f'title="{escape(cell.title(name))}"><span class="version">{escape(cell.label)}</span>'
    )
    if cell.open_hotfix:
        html += '<span class="hotfix-label">hotfix</span>'
    if cell.changed_text:
        html += f'<span class="differing">{cell.changed_text}</span>'
    if cell.shows_live:
        html += get_template("lifecycle/_live_state.html").render(
            {"live": cell.live, "application": application, "environment": cell.environment, "on_grid": True}
        )
    return html + "</td>"
