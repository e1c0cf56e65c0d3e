// Project maps (templates/portal/_project_map.html, project_map.html), drawn by the vendored
// Leaflet 1.9.4 on the vendored Natural Earth coastline: no tile server, no request leaving
// this site. Everything the map needs is in the element's data-* attributes (the CSP allows no
// inline script): the GeoJSON to draw, the coastline's URL, the marker images' folder and the
// controls' words in the page's language. Leaflet positions its panes by setting
// element.style from script, which the CSP (style-src 'self') does not restrict.
//
// data-map="project": the project's point or shape, fitted. data-map="overview": a marker per
// project; a click (or Enter on a focused marker) opens the project's page.

import * as L from "../vendor/leaflet/leaflet-src.esm.js";

const LAND = { color: "#7c9a8c", weight: 0.6, fillColor: "#eef2e6", fillOpacity: 1, interactive: false };
const SHAPE = { color: "#b45309", weight: 3, fillColor: "#f59e0b", fillOpacity: 0.35, className: "project-shape" };

function numbers(text) {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

function makeMap(el) {
  const d = el.dataset;
  L.Icon.Default.imagePath = d.images;
  el.replaceChildren(); // the fallback sentence: the map takes its place
  const map = L.map(el, { zoomControl: false, minZoom: 2, maxZoom: 14, zoomSnap: 0.5, worldCopyJump: true });
  L.control.zoom({ zoomInTitle: d.zoomIn, zoomOutTitle: d.zoomOut }).addTo(map);
  map.attributionControl.setPrefix(false);
  map.attributionControl.addAttribution(d.attribution);
  // The coastline goes under whatever the page draws (its own pane, below the overlays).
  map.createPane("land"); // z-index 250 in figures.css: under the overlays (400)
  fetch(d.base)
    .then((r) => (r.ok ? r.json() : Promise.reject(new Error(`coastline: ${r.status}`))))
    .then((land) => {
      L.geoJSON(land, { pane: "land", style: () => ({ ...LAND, className: "map-land" }) }).addTo(map);
      el.dataset.ready = "true";
    })
    .catch(() => {
      el.dataset.ready = "no-coastline";
    });
  return map;
}

function projectMap(el) {
  const feature = numbers(el.dataset.geojson);
  const map = makeMap(el);
  if (!feature || !feature.geometry) {
    map.setView([30, 120], 4);
    return;
  }
  const layer = L.geoJSON(feature, {
    style: () => SHAPE,
    pointToLayer: (_f, latlng) => L.circleMarker(latlng, { ...SHAPE, radius: 9, fillOpacity: 0.8 }),
  }).addTo(map);
  if (feature.geometry.type === "Point") {
    const [lon, lat] = feature.geometry.coordinates;
    map.setView([lat, lon], 8);
  } else {
    map.fitBounds(layer.getBounds(), { padding: [24, 24], maxZoom: 13 });
  }
}

function overviewMap(el) {
  const collection = numbers(el.dataset.geojson);
  const map = makeMap(el);
  const markers = [];
  for (const f of collection?.features ?? []) {
    const [lon, lat] = f.geometry.coordinates;
    const p = f.properties;
    const label = `${p.name} (${p.code})`;
    const marker = L.marker([lat, lon], { title: label, alt: label, keyboard: true, riseOnHover: true });
    marker.bindTooltip(label);
    marker.on("click", () => window.location.assign(p.url));
    // Leaflet makes the icon a focusable role="button" but acts on Enter only for popups:
    // Enter and Space open the project, as a button's would.
    marker.on("keydown", (e) => {
      if (e.originalEvent.key === "Enter" || e.originalEvent.key === " ") {
        e.originalEvent.preventDefault();
        window.location.assign(p.url);
      }
    });
    // The icon exists once the map has a view (after the fitting below), hence on "add".
    marker.on("add", () => marker.getElement().setAttribute("data-href", p.url));
    marker.addTo(map);
    markers.push(marker);
  }
  if (markers.length) {
    map.fitBounds(L.featureGroup(markers).getBounds(), { padding: [36, 36], maxZoom: 8 });
  } else {
    map.setView([30, 120], 4);
  }
}

for (const el of document.querySelectorAll("[data-map]")) {
  if (el.dataset.map === "project") projectMap(el);
  else if (el.dataset.map === "overview") overviewMap(el);
}
