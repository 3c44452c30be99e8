"""The map's controls: page settings, legend, findings summary, name search, buffer query.

The legend and the summary are written as HTML here (escaped by Jinja); search and the buffer
query are ``georisk-map.js`` functions, configured by ``PageConfig``.
"""

from __future__ import annotations

from typing import Any

from branca.element import MacroElement
from folium.elements import JSCSSMixin
from jinja2 import Environment, Template, select_autoescape
from markupsafe import Markup

from geo_service.api.deps import Lang
from geo_service.catalogue import RISK_CLASSES, Catalogue, Layer
from geo_service.webmap.overlays import Overlay, layer_spec, script_json
from geo_service.webmap.summary import FindingsSummary
from geo_service.webmap.text import LOCALES, WORDS, browser_words
from geo_service.webmap.vendor import DRAW_CSS, DRAW_JS, GEORISK_JS, use_vendor

_html = Environment(autoescape=select_autoescape(default_for_string=True, default=True))


class PageConfig(JSCSSMixin):
    """``georisk.configure(...)``: the interface words and every vector layer's spec.

    Added to the map before any overlay, whose scripts look their layer up in it.
    """

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        georisk.configure({{ this.config }});
        {% endmacro %}
        """
    )

    def __init__(self, catalogue: Catalogue, lang: Lang, *, server: bool) -> None:
        super().__init__()
        self._name = "PageConfig"
        config = {
            "words": browser_words(lang),
            "locale": LOCALES[lang],
            "base": "",  # same origin: the page is served by georisk
            "server": server,
            "layers": {layer.id: layer_spec(layer, lang) for layer in catalogue.vector_layers},
        }
        self.config = Markup(script_json(config))
        self.default_js = [("georisk_map", GEORISK_JS)]


class HtmlControl(MacroElement):
    """A Leaflet control holding fixed HTML (legend, summary), at a corner of the map."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        (function () {
            var control = L.control({position: {{ this.position|tojson }}});
            control.onAdd = function () {
                var div = L.DomUtil.create("div", {{ this.css_class|tojson }});
                div.innerHTML = {{ this.script }};
                L.DomEvent.disableClickPropagation(div);
                L.DomEvent.disableScrollPropagation(div);
                return div;
            };
            control.addTo({{ this._parent.get_name() }});
        })();
        {% endmacro %}
        """
    )

    def __init__(self, html: str, position: str, css_class: str) -> None:
        super().__init__()
        self._name = "HtmlControl"
        self.html = html
        self.script = Markup(script_json(html))
        self.position = position
        self.css_class = f"leaflet-bar georisk-panel {css_class}"


_LEGEND = _html.from_string(
    """
    <details open><summary>{{ words.legend }}</summary>
    <strong>{{ words.risk_classes }}</strong>
    <ul class="georisk-risk-classes">
    {% for name, colour, meaning in classes %}
      <li data-class="{{ name }}"><span class="georisk-swatch point"
        style="border-color:{{ colour }};background:{{ colour }}"></span>{{ meaning }}</li>
    {% endfor %}
    </ul>
    <ul>
    {% for title, colour, fill, shape, tiled in layers %}
      <li><span class="georisk-swatch {{ shape }}"
        style="border-color:{{ colour }};background:{{ fill }}"></span>{{ title }}
        {%- if tiled %} · {{ words.tiled }}{% endif %}</li>
    {% endfor %}
    </ul>
    {% for note in notes %}<p class="georisk-note">{{ note }}</p>{% endfor %}
    </details>
    """
)


def legend(
    catalogue: Catalogue, overlays: list[Overlay], lang: Lang, notes: list[str]
) -> HtmlControl:
    """The four risk colours with their meaning, each layer's symbol, and ``notes``.

    The risk colours come first: they are what a planner reads the map by.
    """
    layers = [
        (
            getattr(o.layer.title, lang),
            o.layer.style.color,
            o.layer.style.fill_color or o.layer.style.color,
            _shape(o.layer),
            o.tiled,
        )
        for o in overlays
    ]
    html = _LEGEND.render(
        words=WORDS[lang], layers=layers, classes=_risk_classes(catalogue, lang), notes=notes
    )
    return HtmlControl(html, "bottomright", "georisk-legend")


_SUMMARY = _html.from_string(
    """
    <details open><summary>{{ words.summary }}</summary>
    <table>
    {% for name, colour, meaning, count in rows %}
      <tr data-class="{{ name }}"><th><span class="georisk-swatch point"
        style="border-color:{{ colour }};background:{{ colour }}"></span>{{ meaning }}</th>
        <td class="number">{{ count }}</td></tr>
    {% endfor %}
      <tr data-class="total"><th>{{ words.findings_total }}</th>
        <td class="number">{{ total }}</td></tr>
      <tr data-class="overdue"><th>{{ words.overdue }}</th>
        <td class="number">{{ overdue }}</td></tr>
    </table>
    </details>
    """
)


def summary_panel(catalogue: Catalogue, summary: FindingsSummary, lang: Lang) -> HtmlControl:
    """Findings by risk colour, and how many are overdue, as the store held them."""
    rows = [
        (name, colour, meaning, f"{summary.by_class.get(name, 0):,}")
        for name, colour, meaning in _risk_classes(catalogue, lang)
    ]
    html = _SUMMARY.render(
        words=WORDS[lang],
        rows=rows,
        total=f"{summary.total:,}",
        overdue=f"{summary.overdue:,}",
    )
    return HtmlControl(html, "bottomleft", "georisk-summary")


class SearchControl(MacroElement):
    """``georisk.searchControl``: a name search over every layer with a name field."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        georisk.searchControl({{ this._parent.get_name() }});
        {% endmacro %}
        """
    )

    def __init__(self) -> None:
        super().__init__()
        self._name = "SearchControl"


class DrawQuery(JSCSSMixin):
    """``georisk.drawQuery``: leaflet-draw tools whose shapes run ``POST /query/buffer``."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        georisk.drawQuery({{ this._parent.get_name() }}, {{ this.options|tojson }});
        {% endmacro %}
        """
    )

    def __init__(self, marker_distance_m: float) -> None:
        super().__init__()
        self._name = "DrawQuery"
        self.options: dict[str, Any] = {"markerDistance": marker_distance_m}
        use_vendor(self, js=DRAW_JS, css=DRAW_CSS)


def _risk_classes(catalogue: Catalogue, lang: Lang) -> list[tuple[str, str, str]]:
    """(class, colour, meaning) of the four risk classes, from the findings layer's catalogue."""
    findings = catalogue["findings"]
    field = next(f for f in findings.fields if f.name == "risk_class")
    titles = field.enum_titles or {}
    return [
        (
            name,
            findings.style.classes[name],
            getattr(titles[name], lang) if name in titles else name,
        )
        for name in RISK_CLASSES
    ]


def _shape(layer: Layer) -> str:
    kinds = {kind.removeprefix("Multi") for kind in layer.geometry}
    if kinds == {"Point"}:
        return "point"
    if kinds == {"LineString"}:
        return "line"
    return "area"
