"""The report page's fixed parts: style sheet and script (vanilla JS, no network, no CDN).

The script sorts the table by any column with a ``data-key`` header (click; again to reverse),
drives the before/after sliders, and, when the page is opened with ``#selftest``, sorts by
score both ways and writes the resulting row orders, the image load counts and the page's
width against the window's (a page wider than the window cuts off its last column) into
``<pre id="selftest">`` as JSON, so a headless browser's ``--dump-dom`` can check the page.
After ``load`` the body always carries ``data-images-total`` / ``data-images-loaded``.
"""

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; margin: 0 0 .2em; }
.meta { color: #555; margin-bottom: 1em; }
table.items { border-collapse: collapse; width: 100%; }
table.items > thead th { position: sticky; top: 0; background: #f3f3f3; text-align: left;
  padding: .4em; border-bottom: 2px solid #ccc; }
th[data-key] { cursor: pointer; user-select: none; }
th[data-key]::after { content: " \\2195"; color: #999; }
th.asc::after { content: " \\25B2"; color: #222; } th.desc::after { content: " \\25BC"; color: #222; }
table.items > tbody > tr > td { vertical-align: top; padding: .5em .4em; border-bottom: 1px solid #e3e3e3; }
.name { font-weight: 600; word-break: break-all; } .prompt { color: #555; font-style: italic; }
.error { color: #b00020; } .warn { color: #8a4b00; font-size: 12px; }
.warn.banner { font-size: 14px; background: #fff4e0; border: 1px solid #e0b070; padding: .4em .6em;
  margin-bottom: 1em; }
.cmp { position: relative; display: inline-block; line-height: 0; }
.cmp img { display: block; } .cmp .after { position: absolute; top: 0; left: 0; }
.cmp input { width: 100%; margin: .3em 0 0; }
.cmp .tag { position: absolute; top: 4px; font: 11px system-ui; line-height: 1.2; color: #fff;
  background: rgba(0,0,0,.55); padding: 1px 4px; }
.maps { display: flex; flex-wrap: wrap; gap: .4em; max-width: 20em; }
table.items > tbody > tr > td:first-child { min-width: 11em; max-width: 16em; }
figure { display: inline-block; margin: 0 .5em .5em 0; vertical-align: top; }
figcaption { font-size: 12px; color: #555; }
table.small { border-collapse: collapse; font-size: 12px; }
table.small td, table.small th { border: 1px solid #ddd; padding: 1px 5px; text-align: left; }
.defect { color: #b00020; font-weight: 600; }
.legend img { width: 256px; height: 12px; display: block; }
.legend span { font-size: 12px; color: #555; }
.num { font-variant-numeric: tabular-nums; }
"""

SCRIPT = """
(function () {
  const body = document.querySelector('table.items tbody');
  function rows() { return Array.from(body.querySelectorAll(':scope > tr')); }
  function value(row, key) {
    const v = row.dataset[key];
    if (v === undefined || v === '') return null;
    const n = Number(v);
    return Number.isNaN(n) ? v : n;
  }
  function sortBy(key, dir) {
    const sorted = rows().sort(function (a, b) {
      const x = value(a, key), y = value(b, key);
      if (x === null && y === null) return 0;
      if (x === null) return 1;            // rows without a value go last either way
      if (y === null) return -1;
      const c = x < y ? -1 : x > y ? 1 : 0;
      return dir === 'asc' ? c : -c;
    });
    sorted.forEach(function (r) { body.appendChild(r); });
    document.querySelectorAll('th[data-key]').forEach(function (th) {
      th.classList.remove('asc', 'desc');
      if (th.dataset.key === key) th.classList.add(dir);
    });
    return sorted.map(function (r) { return r.dataset.name; });
  }
  window.grefineSort = sortBy;
  document.querySelectorAll('th[data-key]').forEach(function (th) {
    th.addEventListener('click', function () {
      sortBy(th.dataset.key, th.classList.contains('desc') ? 'asc' : 'desc');
    });
  });
  document.querySelectorAll('.cmp input').forEach(function (slider) {
    const after = slider.parentElement.querySelector('.after');
    function move() { after.style.clipPath = 'inset(0 0 0 ' + slider.value + '%)'; }
    slider.addEventListener('input', move); move();
  });
  window.addEventListener('load', function () {
    const images = Array.from(document.images);
    const loaded = images.filter(function (i) { return i.complete && i.naturalWidth > 0; });
    document.body.dataset.imagesTotal = images.length;
    document.body.dataset.imagesLoaded = loaded.length;
    if (location.hash === '#selftest') {
      const out = {
        images_total: images.length,
        images_loaded: loaded.length,
        broken: images.filter(function (i) { return !(i.complete && i.naturalWidth > 0); })
                      .map(function (i) { return i.alt; }),
        asc: sortBy('score', 'asc'),
        desc: sortBy('score', 'desc'),
        scores: rows().map(function (r) { return value(r, 'score'); }),
        page_width: document.documentElement.scrollWidth,
        view_width: window.innerWidth
      };
      document.getElementById('selftest').textContent = JSON.stringify(out);
    }
  });
})();
"""
