"""The backtest report: ``report.json`` (every figure), PNG charts, ``round_trips.csv`` and a self-contained
``report.html``.

:func:`write_report` writes them into one folder. The HTML embeds the
PNGs (base64), so the one file can be mailed or archived alone. Figures:
:mod:`backtest.report.figures`; charts: :mod:`backtest.report.charts`;
the page: ``template.html.j2`` (Jinja2, autoescaped).
"""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path
from typing import Any

from backtest.engine import BacktestResult

TEMPLATE = "template.html.j2"


def _clean(x: Any) -> Any:
    """JSON-safe: NaN/inf become None, datetimes ISO strings, tuples lists."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if hasattr(x, "isoformat"):
        return x.isoformat()
    return x


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x * 100:+.2f}%"


def _num(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}"


def _money(x: float | None) -> str:
    return "–" if x is None else f"{x:,.2f}"


def _heat(x: float | None) -> str:
    """Background colour of a return cell: green for gains, red for losses, stronger up to ±10 %."""
    if x is None:
        return "#ffffff"
    a = min(abs(x) / 0.10, 1.0)
    r, g, b = (255 - int(a * 120), 255, 255 - int(a * 120)) if x >= 0 else (255, 255 - int(a * 120), 255 - int(a * 120))
    return f"#{r:02x}{g:02x}{b:02x}"


def render_html(figures: dict[str, Any], images: dict[str, bytes]) -> str:
    """The report page: ``figures`` (from :func:`~backtest.report.figures.build_figures`) and PNG bytes by name."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    env = Environment(loader=FileSystemLoader(Path(__file__).parent), autoescape=select_autoescape(["html", "j2"]),
                      undefined=StrictUndefined)
    tpl = env.get_template(TEMPLATE)
    return tpl.render(**figures, images={k: base64.b64encode(v).decode() for k, v in images.items()},
                      pct=_pct, num=_num, money=_money, heat=_heat)


def write_report(result: BacktestResult, out_dir: Path) -> dict[str, Path]:
    """Write ``report.json``, the PNG charts, ``round_trips.csv`` (every book's round trips,
    :func:`~backtest.report.figures.write_round_trips_csv`) and ``report.html`` into ``out_dir``.

    Returns:
        file name -> path of everything written.

    Raises:
        OSError: ``out_dir`` cannot be written.
    """
    from backtest.report.charts import write_charts
    from backtest.report.figures import build_figures, write_round_trips_csv

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = _clean(build_figures(result))
    written: dict[str, Path] = {}
    (out_dir / "report.json").write_text(json.dumps(figures, indent=1))
    written["report.json"] = out_dir / "report.json"
    title = f"{figures['meta']['first_day']} to {figures['meta']['last_day']}"
    written["round_trips.csv"] = write_round_trips_csv(figures["round_trips"], out_dir / "round_trips.csv")
    charts = write_charts(figures, out_dir, title)
    written.update(charts)
    html = render_html(figures, {name: p.read_bytes() for name, p in charts.items()})
    (out_dir / "report.html").write_text(html)
    written["report.html"] = out_dir / "report.html"
    return written
