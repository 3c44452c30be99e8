/* georisk's map in the browser: styles, popups, vector-tile overlays, search, buffer queries.
 *
 * Loaded by /map from /static and inlined into standalone files (`georisk map -o`). The page
 * calls georisk.configure() once, then the overlay and control functions below. Values from the
 * data are always written as text (textContent), never parsed as HTML, so imported data cannot
 * inject markup. Nothing here asks for anything outside georisk's own server.
 */
(function () {
  "use strict";

  const POINT_FILL_OPACITY = 0.8; // a faint dot is lost among others
  const OVERLAY_Z = 400; // Leaflet's overlay pane; each layer's pane sits at 400 + its z_index
  const FOUND_PANE = "georisk-found";
  const FOUND_Z = 590; // above every layer, below markers (600) and popups (700)
  const HIGHLIGHT = { color: "#00e5ff", weight: 4, opacity: 1, fillOpacity: 0.15, pane: FOUND_PANE };
  const SEARCH_DELAY_MS = 250;
  const SEARCH_LIMIT = 10;

  const georisk = (window.georisk = {});
  let config = { words: {}, locale: "zh-CN", base: "", layers: {}, server: true };
  const searchable = []; // {spec, layer}: inline overlays (searched here) and tiled ones (by the server)

  /** Page-wide settings: words of the interface, number locale, the layers' specs by id. */
  georisk.configure = function (options) {
    config = options;
  };

  /** The spec of layer ``id`` (caption, field labels, style, tiles) given to configure(). */
  georisk.layerSpec = function (id) {
    return config.layers[id];
  };

  /** Leaflet path options of one feature: the layer's style, coloured by its classifying field. */
  georisk.pathStyle = function (style, properties, point) {
    let colour = style.color;
    let fill = style.fillColor || style.color;
    const value = style.classifyBy ? properties[style.classifyBy] : undefined;
    if (value !== undefined && value !== null && style.classes[String(value)]) {
      colour = fill = style.classes[String(value)];
    }
    const options = {
      color: colour,
      fillColor: fill,
      weight: style.weight,
      fillOpacity: point ? Math.max(style.fillOpacity, POINT_FILL_OPACITY) : style.fillOpacity,
    };
    if (style.dashArray) options.dashArray = style.dashArray;
    if (point) {
      options.radius = style.radius;
      options.fill = true;
    }
    return options;
  };

  /** A table of a feature's fields under their catalogue titles; absent fields are skipped. */
  georisk.fieldTable = function (spec, values) {
    const words = config.words;
    const table = document.createElement("table");
    table.className = "georisk-popup";
    table.createCaption().textContent = spec.caption;
    for (const [key, label] of spec.labels) {
      if (values[key] === undefined || values[key] === null) continue;
      const row = table.insertRow();
      const th = document.createElement("th");
      th.textContent = label;
      row.appendChild(th);
      row.insertCell().textContent = show(values[key], words);
    }
    return table;
  };

  function show(value, words) {
    if (Array.isArray(value)) return value.join(words.sep);
    if (typeof value === "boolean") return value ? words.yes : words.no;
    if (typeof value === "number") return value.toLocaleString(config.locale);
    return String(value);
  }

  function isPoint(feature) {
    const type = feature.geometry && feature.geometry.type;
    return type === "Point" || type === "MultiPoint";
  }

  /**
   * The pane of a layer: one per layer, stacked by the catalogue's z_index, so inline and tiled
   * layers draw (and take clicks) in the same order whatever way they reach the page.
   */
  function pane(map, name, zIndex) {
    if (!map.getPane(name)) map.createPane(name).style.zIndex = String(zIndex);
    return name;
  }

  function layerPane(map, spec) {
    return pane(map, `georisk-${spec.id}`, OVERLAY_Z + spec.zIndex);
  }

  /** An overlay of features written into the page (GeoJSON), with popups. */
  georisk.inlineOverlay = function (spec, data, map) {
    const where = layerPane(map, spec);
    const layer = L.geoJSON(data, {
      pane: where,
      style: (feature) => georisk.pathStyle(spec.style, feature.properties, isPoint(feature)),
      pointToLayer: (feature, latlng) =>
        L.circleMarker(
          latlng,
          Object.assign({ pane: where }, georisk.pathStyle(spec.style, feature.properties, true)),
        ),
    });
    layer.bindPopup((item) => georisk.fieldTable(spec, featureValues(item.feature)), {
      maxWidth: 420,
    });
    searchable.push({ spec: spec, layer: layer });
    return layer;
  };

  function featureValues(feature) {
    return Object.assign({ id: feature.id }, feature.properties);
  }

  /** An overlay drawn from georisk's vector tiles; a click fetches the feature's attributes. */
  georisk.tiledOverlay = function (spec, map) {
    const style = (properties, zoom, dimension) => {
      const point = dimension === 1;
      const options = georisk.pathStyle(spec.style, properties, point);
      if (point && properties.count > 1) {
        // a dense cell drawn as one point: bigger the more features it stands for
        options.radius = spec.style.radius + Math.min(8, 2 * Math.log2(properties.count));
      }
      options.fill = dimension !== 2;
      return options;
    };
    const layer = L.vectorGrid.protobuf(config.base + spec.tiles, {
      vectorTileLayerStyles: { [spec.id]: style },
      interactive: true,
      pane: layerPane(map, spec),
      rendererFactory: L.svg.tile,
      maxNativeZoom: spec.maxZoom,
      maxZoom: 22,
    });
    layer.on("click", (event) => tilePopup(spec, event, map));
    searchable.push({ spec: spec, layer: null });
    return layer;
  };

  function tilePopup(spec, event, map) {
    const words = config.words;
    const properties = event.layer.properties || {};
    const popup = L.popup({ maxWidth: 420 }).setLatLng(event.latlng);
    if (properties.count > 1) {
      popup.setContent(message(words.aggregate.replace("{count}", show(properties.count, words))));
      popup.openOn(map);
      return;
    }
    popup.setContent(message(words.loading)).openOn(map);
    const url = `${config.base}/collections/${spec.id}/items/${encodeURIComponent(properties.id)}`;
    getJSON(url)
      .then((feature) => popup.setContent(georisk.fieldTable(spec, featureValues(feature))))
      .catch((error) => popup.setContent(message(`${words.failed}: ${error.message}`)));
  }

  function message(text) {
    const element = document.createElement("div");
    element.className = "georisk-message";
    element.textContent = text;
    return element;
  }

  /** JSON from georisk; a failed answer becomes an Error carrying the server's own message. */
  function getJSON(url, options) {
    const request = Object.assign({ headers: { Accept: "application/geo+json, application/json" } }, options);
    return fetch(url, request).then((response) =>
      response.json().then(
        (body) => {
          if (!response.ok) throw new Error(body.detail || body.description || response.statusText);
          return body;
        },
        () => {
          throw new Error(`${response.status} ${response.statusText}`);
        },
      ),
    );
  }

  function control(position, className, build) {
    const Control = L.Control.extend({
      onAdd: function () {
        const container = L.DomUtil.create("div", `leaflet-bar georisk-panel ${className}`);
        L.DomEvent.disableClickPropagation(container);
        L.DomEvent.disableScrollPropagation(container);
        build(container);
        return container;
      },
    });
    return new Control({ position: position });
  }

  // -- search by name ----------------------------------------------------------------------

  /** A search box: inline layers are searched here, tiled ones by the server (CQL2 LIKE). */
  georisk.searchControl = function (map) {
    const words = config.words;
    const found = L.featureGroup().addTo(map);
    pane(map, FOUND_PANE, FOUND_Z);
    let input, list, timer;
    const box = control("topleft", "georisk-search", (container) => {
      input = L.DomUtil.create("input", "", container);
      input.type = "search";
      input.placeholder = words.search;
      input.setAttribute("aria-label", words.search);
      list = L.DomUtil.create("ol", "georisk-results", container);
    });
    box.addTo(map);
    input.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => run(input.value.trim()), SEARCH_DELAY_MS);
    });
    input.addEventListener("keydown", (event) => {
      if (event.key !== "Enter") return;
      clearTimeout(timer);
      run(input.value.trim());
    });

    function run(text) {
      list.replaceChildren();
      found.clearLayers();
      if (!text) return;
      const needle = text.toLowerCase();
      for (const { spec, layer } of searchable) {
        if (!spec.nameField) continue;
        if (layer) {
          layer.eachLayer((item) => {
            const name = item.feature.properties[spec.nameField];
            if (typeof name === "string" && name.toLowerCase().includes(needle)) {
              addResult(spec, name, () => showInline(spec, item));
            }
          });
        } else if (config.server) {
          searchServer(spec, text);
        }
      }
    }

    function searchServer(spec, text) {
      const pattern = `%${text.replace(/'/g, "''")}%`;
      const filter = `${spec.nameField} LIKE '${pattern}'`;
      const url = `${config.base}/collections/${spec.id}/items?limit=${SEARCH_LIMIT}&filter=${encodeURIComponent(filter)}`;
      getJSON(url)
        .then((result) => {
          if (input.value.trim() !== text) return; // the user typed on meanwhile
          for (const feature of result.features) {
            addResult(spec, feature.properties[spec.nameField], () => showFeature(spec, feature));
          }
        })
        .catch((error) => addNote(`${spec.caption}: ${error.message}`));
    }

    function addResult(spec, name, open) {
      if (list.childElementCount >= SEARCH_LIMIT * 3) return;
      const item = L.DomUtil.create("li", "", list);
      const button = L.DomUtil.create("button", "", item);
      button.type = "button";
      button.textContent = `${name} · ${spec.caption}`;
      button.addEventListener("click", open);
    }

    function addNote(text) {
      L.DomUtil.create("li", "georisk-note", list).textContent = text;
    }

    function showInline(spec, item) {
      const bounds = item.getBounds ? item.getBounds() : L.latLngBounds([item.getLatLng()]);
      open(spec, item.feature, bounds);
    }

    function showFeature(spec, feature) {
      found.clearLayers();
      const shape = L.geoJSON(feature, {
        style: HIGHLIGHT,
        pointToLayer: (f, latlng) => L.circleMarker(latlng, Object.assign({ radius: 10 }, HIGHLIGHT)),
      }).addTo(found);
      open(spec, feature, shape.getBounds());
    }

    // the popup is the feature's own (a layer's popup opened by code picks its first feature)
    function open(spec, feature, bounds) {
      map.fitBounds(bounds, { maxZoom: 16, animate: false });
      L.popup({ maxWidth: 420 })
        .setLatLng(bounds.getCenter())
        .setContent(georisk.fieldTable(spec, featureValues(feature)))
        .openOn(map);
    }
  };

  // -- buffer query by drawing -------------------------------------------------------------

  /** leaflet-draw tools (circle, polygon, marker) that ask POST /query/buffer what lies inside. */
  georisk.drawQuery = function (map, options) {
    const words = config.words;
    const drawn = L.featureGroup().addTo(map);
    pane(map, FOUND_PANE, FOUND_Z);
    const found = L.geoJSON(null, {
      style: HIGHLIGHT,
      pointToLayer: (f, latlng) => L.circleMarker(latlng, Object.assign({ radius: 8 }, HIGHLIGHT)),
      onEachFeature: (feature, layer) => layer.bindPopup(() => foundTable(feature), { maxWidth: 420 }),
    }).addTo(map);
    let panel;
    Object.assign(L.drawLocal.draw.toolbar.buttons, words.drawButtons);
    new L.Control.Draw({
      position: "topleft",
      draw: {
        polyline: false,
        rectangle: false,
        circlemarker: false,
        circle: { shapeOptions: { color: "#37474f", fillOpacity: 0.08 } },
        polygon: { allowIntersection: false, shapeOptions: { color: "#37474f", fillOpacity: 0.08 } },
        marker: true,
      },
    }).addTo(map);
    control("bottomleft", "georisk-query", (container) => {
      panel = container;
      panel.hidden = true;
    }).addTo(map);

    map.on(L.Draw.Event.CREATED, (event) => {
      drawn.clearLayers();
      drawn.addLayer(event.layer);
      run(request(event.layerType, event.layer));
    });

    function request(kind, layer) {
      if (kind === "circle") {
        return { geometry: point(layer.getLatLng()), distance_m: layer.getRadius() };
      }
      if (kind === "marker") {
        return { geometry: point(layer.getLatLng()), distance_m: options.markerDistance };
      }
      return { geometry: layer.toGeoJSON().geometry, distance_m: 0 };
    }

    function point(latlng) {
      return { type: "Point", coordinates: [latlng.lng, latlng.lat] };
    }

    function run(body) {
      found.clearLayers();
      panel.hidden = false;
      panel.replaceChildren(message(words.querying));
      getJSON(`${config.base}/query/buffer`, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/geo+json" },
        body: JSON.stringify(body),
      })
        .then((result) => {
          found.addData(result);
          panel.replaceChildren(summaryTable(result.summary, result.features.length));
        })
        .catch((error) => panel.replaceChildren(message(`${words.failed}: ${error.message}`)));
    }

    function summaryTable(summary, returned) {
      const table = document.createElement("table");
      table.className = "georisk-popup georisk-query-summary";
      table.createCaption().textContent = words.queryTitle.replace(
        "{distance}",
        show(Math.round(summary.distance_m), words),
      );
      const add = (label, value, key) => {
        const row = table.insertRow();
        if (key) row.dataset.collection = key;
        const th = document.createElement("th");
        th.textContent = label;
        row.appendChild(th);
        const cell = row.insertCell();
        cell.className = "number";
        cell.textContent = value;
      };
      for (const [id, entry] of Object.entries(summary.collections || {})) {
        if (!entry.count) continue; // the panel lists what was found
        const spec = config.layers[id];
        add(spec ? spec.caption : id, show(entry.count, words), id);
      }
      add(words.features, show(returned, words));
      const people = summary.population;
      add(words.people, people === null || people === undefined ? "—" : show(Math.round(people), words));
      return table;
    }

    function foundTable(feature) {
      const spec = config.layers[feature.properties.collection] || {
        caption: feature.properties.collection,
        labels: [["id", words.id]],
      };
      const labels = [...spec.labels, ["distance_m", words.distance]];
      return georisk.fieldTable(Object.assign({}, spec, { labels: labels }), featureValues(feature));
    }
  };
})();
