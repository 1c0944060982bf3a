"""The web page at ``/``: upload or drop an image, type a prompt, pick a recipe, watch the
job's progress, then see its results.

The results are not drawn by a second copy of the report code: the page loads
``/v1/jobs/{id}/report``, the very page ``grefine report`` writes (grefine_kit.report: heatmaps
with their legend, the mask outline, the before/after slider, the per-phrase table), into an
``<iframe srcdoc>``; the form borrows that page's style sheet. Everything is inline: the page
works offline, with no CDN. ``document.body.dataset.state`` says ``idle``, ``running``,
``done`` or ``error`` (for people's scripts and the browser test).
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence

from grefine_serve.settings import API_PREFIX

__all__ = ["page_html"]

_CSS = """
form.job { display: grid; grid-template-columns: max-content 1fr; gap: .5em 1em; max-width: 52em;
  align-items: center; margin-bottom: 1em; }
.drop { grid-column: 1 / 3; border: 2px dashed #999; border-radius: 6px; padding: 1.2em; text-align: center;
  color: #555; }
.drop.over { border-color: #2a7; background: #f0fff6; }
input[type=text] { width: 100%; }
#status { margin: .5em 0; } #status progress { width: 20em; vertical-align: middle; }
iframe.result { width: 100%; border: 1px solid #ddd; min-height: 30em; }
"""

_SCRIPT = """
(function () {
  const API = %(api)s;
  const form = document.getElementById('job'), input = document.getElementById('image');
  const drop = document.getElementById('drop'), bar = document.getElementById('bar');
  const phase = document.getElementById('phase'), error = document.getElementById('error');
  const frame = document.getElementById('result'), cancel = document.getElementById('cancel');
  const token = document.getElementById('token');
  let current = null;
  function state(s) { document.body.dataset.state = s; }
  function headers() {
    const t = token ? (token.value || sessionStorage.getItem('grefine-token') || '') : '';
    if (token && token.value) sessionStorage.setItem('grefine-token', token.value);
    return t ? {'Authorization': 'Bearer ' + t} : {};
  }
  async function api(path, options) {
    const response = await fetch(path, Object.assign({headers: headers()}, options || {}));
    if (!response.ok) {
      let message = response.status + ' ' + response.statusText;
      try { const body = await response.json(); message = body.error.message + ' (' + body.error.code + ')'; }
      catch (e) { /* not JSON */ }
      throw new Error(message);
    }
    return response;
  }
  function fail(e) { error.textContent = String(e.message || e); cancel.hidden = true; state('error'); }
  async function show(report) {
    const page = await (await api(report + '?max_size=256')).text();
    frame.onload = function () {
      const doc = frame.contentDocument;
      if (doc && doc.body) frame.style.height = (doc.documentElement.scrollHeight + 20) + 'px';
      state('done');
    };
    frame.hidden = false;
    frame.srcdoc = page;
  }
  async function poll(id) {
    while (true) {
      const job = await (await api(API + '/jobs/' + id)).json();
      bar.value = job.progress;
      phase.textContent = job.status + (job.phase ? ': ' + job.phase : '') +
        ' (' + Math.round(job.progress * 100) + '%%)';
      if (job.status === 'done') { cancel.hidden = true; return show(job.links.report); }
      if (job.status === 'failed' || job.status === 'cancelled') {
        throw new Error(job.status + ': ' + (job.error ? job.error.message : ''));
      }
      await new Promise(function (r) { setTimeout(r, 300); });
    }
  }
  ['dragenter', 'dragover'].forEach(function (n) {
    drop.addEventListener(n, function (e) { e.preventDefault(); drop.classList.add('over'); });
  });
  ['dragleave', 'drop'].forEach(function (n) {
    drop.addEventListener(n, function (e) { e.preventDefault(); drop.classList.remove('over'); });
  });
  drop.addEventListener('drop', function (e) {
    if (e.dataTransfer && e.dataTransfer.files.length) { input.files = e.dataTransfer.files; }
  });
  cancel.addEventListener('click', function () {
    if (current) api(API + '/jobs/' + current + '/cancel', {method: 'POST'}).catch(fail);
  });
  form.addEventListener('submit', async function (e) {
    e.preventDefault();
    error.textContent = ''; frame.hidden = true; bar.value = 0; phase.textContent = 'uploading';
    state('running');
    const mode = form.querySelector('input[name=mode]:checked').value;
    const data = new FormData();
    data.append('image', input.files[0]);
    ['prompt', 'recipe'].forEach(function (k) {
      const v = form.elements[k].value; if (v) data.append(k, v);
    });
    try {
      const answer = await (await api(API + '/' + mode, {method: 'POST', body: data})).json();
      document.body.dataset.job = answer.id;
      if (mode === 'score') {
        bar.value = 1; phase.textContent = 'scored'; return await show(answer.links.report);
      }
      current = answer.id; cancel.hidden = false;
      await poll(answer.id);
    } catch (err) { fail(err); }
  });
  state('idle');
})();
"""


def page_html(recipes: Sequence[str], default: str, auth: bool) -> str:
    """The page for a server serving ``recipes`` (``auth``: show the token field)."""
    from grefine_kit.report.page import STYLE

    options = "".join(
        f'<option value="{html.escape(n)}"{" selected" if n == default else ""}>{html.escape(n)}</option>'
        for n in recipes
    )
    token = (
        '<label for="token">Token</label><input type="password" id="token" autocomplete="off">'
        if auth
        else ""
    )
    script = _SCRIPT % {"api": json.dumps(API_PREFIX)}
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>grefine serve</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{STYLE}{_CSS}</style></head>
<body data-state="loading">
<h1>grefine serve</h1>
<div class="meta">Find the bad regions of an image and refine only there. Maps: 1 = good.
API: <a href="{API_PREFIX}/docs">{API_PREFIX}/docs</a>.</div>
<form class="job" id="job">
<div class="drop" id="drop">Drop an image here, or choose one:
<input type="file" id="image" name="image" accept="image/*" required></div>
<label for="prompt">Prompt</label>
<input type="text" id="prompt" name="prompt" placeholder="what the image should show">
<label for="recipe">Recipe</label><select id="recipe" name="recipe">{options}</select>
<span>Do</span><span><label><input type="radio" name="mode" value="refine" checked> refine</label>
<label><input type="radio" name="mode" value="score"> score only</label></span>
{token}
<span></span><span><button type="submit" id="go">Run</button>
<button type="button" id="cancel" hidden>Cancel</button></span>
</form>
<div id="status"><progress id="bar" max="1" value="0"></progress> <span id="phase"></span></div>
<pre id="error" class="error"></pre>
<iframe class="result" id="result" title="results" hidden></iframe>
<script>{script}</script>
</body></html>
"""
