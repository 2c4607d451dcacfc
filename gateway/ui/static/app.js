// mcpgw web UI. Hand-written, no build step, no dependencies.
//
// Every piece of registry data (names, descriptions, tags, schemas) is
// untrusted: it reaches the page only through textContent, text nodes and
// attribute values, never through innerHTML. The server's
// Content-Security-Policy forbids inline script besides.
'use strict';

(function () {
  const body = document.body;
  const cfg = {
    view: body.dataset.view || 'list',
    path: body.dataset.path || '',
    signedIn: body.dataset.signedIn === 'true',
    admin: body.dataset.admin === 'true',
    csrf: body.dataset.csrf || '',
    publicURL: (body.dataset.publicUrl || location.origin).replace(/\/+$/, ''),
    pollMs: Math.max(500, Number(body.dataset.pollMs) || 5000),
    error: body.dataset.error || '',
  };
  const state = { services: [], tags: new Set(), lastQuery: null, finderMissing: false, polling: false };

  // ---- DOM helpers -------------------------------------------------------

  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));

  // el builds an element: props set attributes (or textContent with "text",
  // listeners with "on<event>"); children are nodes or strings (as text).
  function el(tag, props, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'text') e.textContent = String(v);
      else if (k === 'class') e.className = v;
      else if (k.startsWith('on') && typeof v === 'function') e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat(Infinity)) {
      if (c === undefined || c === null || c === false) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  function banner(text, kind) {
    const b = $('#banner');
    b.textContent = text || '';
    b.className = 'banner ' + (kind || 'info');
    b.hidden = !text;
  }

  function relTime(iso) {
    if (!iso) return 'never checked';
    const t = Date.parse(iso);
    if (Number.isNaN(t)) return iso;
    const s = Math.max(0, Math.round((Date.now() - t) / 1000));
    if (s < 60) return s + ' s ago';
    if (s < 3600) return Math.round(s / 60) + ' min ago';
    if (s < 86400) return Math.round(s / 3600) + ' h ago';
    return new Date(t).toLocaleString();
  }

  // key is a service path without its slashes, as the REST API takes it;
  // each segment is encoded on its own.
  function key(path) {
    return String(path).replace(/^\/+|\/+$/g, '').split('/').map(encodeURIComponent).join('/');
  }

  function mcpURL(path) {
    return cfg.publicURL + '/' + String(path).replace(/^\/+|\/+$/g, '') + '/mcp';
  }

  // ---- API ---------------------------------------------------------------

  class APIError extends Error {
    constructor(status, data) {
      super((data && data.error) || ('the gateway answered HTTP ' + status));
      this.status = status;
      this.details = (data && Array.isArray(data.details)) ? data.details : [];
    }
  }

  async function api(method, url, payload) {
    const headers = { Accept: 'application/json' };
    const opts = { method, headers, credentials: 'same-origin', cache: 'no-store' };
    if (method !== 'GET') headers['X-CSRF-Token'] = cfg.csrf;
    if (payload !== undefined) {
      headers['Content-Type'] = 'application/json';
      opts.body = typeof payload === 'string' ? payload : JSON.stringify(payload);
    }
    let resp;
    try {
      resp = await fetch(url, opts);
    } catch (e) {
      throw new APIError(0, { error: 'the gateway cannot be reached (' + e.message + ')' });
    }
    let data = null;
    try { data = await resp.json(); } catch (_) { /* not JSON */ }
    if (!resp.ok) {
      if (resp.status === 401) {
        banner(cfg.signedIn ? 'Your sign-in is no longer valid; sign in again.'
          : 'This gateway shows its services only to signed-in users: sign in with an API key.', 'error');
        showSignIn(true);
      }
      throw new APIError(resp.status, data);
    }
    return data;
  }

  // ---- health and badges -------------------------------------------------

  function healthParts(display) {
    const s = String(display || 'unknown');
    const i = s.indexOf(': ');
    const status = i < 0 ? s : s.slice(0, i);
    return { status, reason: i < 0 ? '' : s.slice(i + 2) };
  }

  function healthClass(status) {
    switch (status) {
      case 'healthy': return 'ok';
      case 'healthy-auth-required': return 'auth';
      case 'unhealthy': return 'bad';
      case 'disabled': return 'off';
      default: return 'unknown';
    }
  }

  function healthCell(svc) {
    const h = healthParts(svc.health_status);
    return el('div', { class: 'health' },
      el('span', { class: 'badge ' + healthClass(h.status), 'data-status': h.status, text: h.status }),
      h.reason ? el('span', { class: 'reason', text: h.reason }) : null,
      el('span', { class: 'checked muted small', title: svc.last_checked_iso || '', text: relTime(svc.last_checked_iso) }));
  }

  function tagChip(tag, onclick) {
    const active = state.tags.has(tag);
    return el(onclick ? 'button' : 'span', {
      type: onclick ? 'button' : undefined, class: 'chip' + (active ? ' active' : ''), 'data-tag': tag,
      'aria-pressed': onclick ? String(active) : undefined, onclick, text: tag,
    });
  }

  // ---- admin actions -----------------------------------------------------

  async function setEnabled(svc, enabled) {
    try {
      await api('POST', '/api/v1/servers/' + key(svc.path) + (enabled ? '/enable' : '/disable'));
      banner((enabled ? 'Enabled ' : 'Disabled ') + svc.server_name + ' (' + svc.path + ').', 'ok');
    } catch (e) {
      banner('Could not ' + (enabled ? 'enable ' : 'disable ') + svc.path + ': ' + e.message, 'error');
    }
    refreshView();
  }

  async function refreshTools(svc) {
    banner('Reading the tool list of ' + svc.path + ' from its upstream…', 'info');
    try {
      const r = await api('POST', '/api/v1/servers/' + key(svc.path) + '/refresh');
      const parts = [];
      if (r && r.added && r.added.length) parts.push(r.added.length + ' added');
      if (r && r.removed && r.removed.length) parts.push(r.removed.length + ' removed');
      if (r && r.changed && r.changed.length) parts.push(r.changed.length + ' changed');
      banner('Refreshed ' + svc.path + ': ' + (r ? r.num_tools : '?') + ' tools' + (parts.length ? ' (' + parts.join(', ') + ')' : ', no change') + '.', 'ok');
    } catch (e) {
      banner('Could not refresh ' + svc.path + ': ' + e.message, 'error');
    }
    refreshView();
  }

  function confirmRemove(svc) {
    const dlg = $('#confirm');
    $('#confirm-text').textContent = 'Remove ' + svc.server_name + ' at ' + svc.path +
      '? Clients that use it lose access at once. This cannot be undone.';
    dlg.returnValue = '';
    dlg.onclose = async () => {
      if (dlg.returnValue !== 'ok') return;
      try {
        await api('DELETE', '/api/v1/servers/' + key(svc.path));
        banner('Removed ' + svc.server_name + ' (' + svc.path + ').', 'ok');
        if (cfg.view === 'detail') { location.href = '/'; return; }
      } catch (e) {
        banner('Could not remove ' + svc.path + ': ' + e.message, 'error');
      }
      refreshView();
    };
    dlg.showModal();
  }

  function adminButtons(svc) {
    if (!cfg.admin) return null;
    return el('div', { class: 'row-actions' },
      el('button', { type: 'button', class: 'toggle', 'data-action': svc.enabled ? 'disable' : 'enable',
        onclick: () => setEnabled(svc, !svc.enabled), text: svc.enabled ? 'Disable' : 'Enable' }),
      el('button', { type: 'button', 'data-action': 'refresh', disabled: !svc.enabled,
        title: svc.enabled ? 'Re-read the tool list from the upstream' : 'Enable the server first',
        onclick: () => refreshTools(svc), text: 'Refresh' }),
      el('button', { type: 'button', class: 'danger', 'data-action': 'remove', onclick: () => confirmRemove(svc), text: 'Remove' }));
  }

  // ---- list view ---------------------------------------------------------

  function matchesTags(svc) {
    const have = new Set((svc.tags || []).map((t) => String(t).toLowerCase()));
    for (const t of state.tags) if (!have.has(t)) return false;
    return true;
  }

  const rowSig = new WeakMap(); // row element -> the data it shows

  function renderList() {
    const all = state.services;
    const shown = all.filter(matchesTags);
    $('#count').textContent = state.tags.size ? '(' + shown.length + ' of ' + all.length + ')' : '(' + all.length + ')';
    $('#updated').textContent = 'updated ' + new Date().toLocaleTimeString();
    // Rows are kept while their data is unchanged (only "checked … ago" is
    // updated), so a poll never swaps a button out from under a click.
    const tbody = $('#services tbody');
    const old = new Map(Array.from(tbody.children).map((tr) => [tr.dataset.path, tr]));
    const active = Array.from(state.tags).sort().join(',');
    const rows = shown.map((svc) => {
      const sig = JSON.stringify(svc) + '|' + active;
      const kept = old.get(svc.path);
      if (kept && rowSig.get(kept) === sig) {
        const c = $('.health .checked', kept);
        if (c) c.textContent = relTime(svc.last_checked_iso);
        return kept;
      }
      const tr = serviceRow(svc);
      rowSig.set(tr, sig);
      return tr;
    });
    if (rows.length !== tbody.children.length || rows.some((r, i) => tbody.children[i] !== r)) tbody.replaceChildren(...rows);
    $('#empty').hidden = all.length > 0;

    const tags = new Set();
    for (const s of all) for (const t of s.tags || []) tags.add(String(t).toLowerCase());
    for (const t of state.tags) tags.add(t);
    const tagSig = Array.from(tags).sort().join('\n') + '|' + active;
    const chips = $('#tags');
    if (chips.dataset.sig !== tagSig) {
      chips.replaceChildren(...Array.from(tags).sort().map((t) => tagChip(t, () => toggleTag(t))));
      chips.dataset.sig = tagSig;
    }
  }

  function serviceRow(svc) {
    return el('tr', { 'data-path': svc.path, class: svc.enabled ? '' : 'disabled' },
      el('td', { class: 'name' }, el('a', { href: '/ui/servers/' + key(svc.path), text: svc.server_name }),
        svc.description ? el('div', { class: 'desc muted small', text: svc.description }) : null),
      el('td', { class: 'path' }, el('code', { text: svc.path })),
      el('td', { class: 'tags' }, (svc.tags || []).map((t) => tagChip(t, () => toggleTag(t)))),
      el('td', { class: 'enabled' }, el('span', { class: 'badge ' + (svc.enabled ? 'ok' : 'off'), text: svc.enabled ? 'yes' : 'no' })),
      el('td', { class: 'health-cell' }, healthCell(svc)),
      el('td', { class: 'num tools', text: String(svc.num_tools) }),
      el('td', { class: 'actions-col' }, adminButtons(svc)));
  }

  function toggleTag(t) {
    if (state.tags.has(t)) state.tags.delete(t); else state.tags.add(t);
    renderList();
    if (state.lastQuery !== null) search();
  }

  async function loadList() {
    const data = await api('GET', '/api/v1/servers');
    state.services = (data && data.services) || [];
    renderList();
  }

  // ---- search ------------------------------------------------------------

  async function search() {
    const q = $('#search-q').value.trim();
    const box = $('#search-results');
    state.lastQuery = q;
    if (!q && state.tags.size === 0) {
      box.hidden = true;
      box.replaceChildren();
      return;
    }
    const params = new URLSearchParams();
    if (q) params.set('q', q);
    for (const t of state.tags) params.append('tag', t);
    params.set('top', '10');
    box.hidden = false;
    box.replaceChildren(el('p', { class: 'muted', text: 'Searching…' }));
    let data;
    try {
      data = await api('GET', '/api/v1/search?' + params.toString());
    } catch (e) {
      const msg = (e.status === 404 || e.status === 405)
        ? 'The tool finder is not available on this gateway (GET /api/v1/search answered ' + e.status + '). The services table below still filters by tag.'
        : 'Search failed: ' + e.message;
      box.replaceChildren(el('p', { class: 'banner error', id: 'search-error', text: msg }));
      return;
    }
    const results = Array.isArray(data) ? data : ((data && (data.results || data.tools)) || []);
    const head = el('div', { class: 'section-head' },
      el('h2', { text: 'Tools matching ' + (q ? '"' + q + '"' : 'the selected tags') }),
      el('span', { class: 'spacer' }),
      el('button', { type: 'button', class: 'link', onclick: () => { $('#search-q').value = ''; state.lastQuery = null; box.hidden = true; }, text: 'Clear' }));
    if (!results.length) {
      box.replaceChildren(head, el('p', { class: 'muted', text: 'No tool matches.' }));
      return;
    }
    box.replaceChildren(head, el('ol', { class: 'results' }, results.map((r) => {
      const pd = r.tool_parsed_description || {};
      return el('li', { class: 'result', 'data-tool': r.tool_name },
        el('div', {},
          el('code', { class: 'tool-name', text: r.tool_name }), ' in ',
          el('a', { href: '/ui/servers/' + key(r.service_path), text: r.service_name || r.service_path }),
          typeof r.overall_similarity_score === 'number' ? el('span', { class: 'muted small score', text: ' score ' + r.overall_similarity_score.toFixed(2) }) : null),
        pd.main ? el('p', { class: 'desc', text: pd.main }) : null,
        r.tool_schema ? el('details', {}, el('summary', { text: 'Input schema' }), el('pre', { text: JSON.stringify(r.tool_schema, null, 2) })) : null);
    })));
  }

  // ---- register ----------------------------------------------------------

  let registerMode = 'form';

  function setRegisterMode(mode) {
    registerMode = mode;
    for (const t of $$('#register .tabs [data-mode]')) t.setAttribute('aria-selected', String(t.dataset.mode === mode));
    for (const m of $$('#register .mode')) m.hidden = m.dataset.mode !== mode;
    clearErrors();
  }

  function clearErrors() {
    for (const f of $$('#register .field')) f.classList.remove('invalid');
    for (const e of $$('#register .field-error')) e.replaceChildren();
    const g = $('#register-general');
    g.hidden = true;
    g.replaceChildren();
  }

  // showProblems puts each {field, reason} next to its field: "headers[0]"
  // and "tool_list[2].schema" belong to headers and tool_list. Problems of
  // fields the form does not have are listed above the buttons.
  function showProblems(message, problems) {
    clearErrors();
    const general = [];
    for (const p of problems) {
      const field = String(p.field || '');
      if (registerMode === 'json') {
        const ul = $('#register [data-field="_json"] .problems');
        ul.append(el('li', { 'data-problem-field': field, text: (field ? field + ': ' : '') + p.reason }));
        $('#register [data-field="_json"]').classList.add('invalid');
        continue;
      }
      const top = (field.match(/^[A-Za-z_]+/) || [''])[0];
      const box = top && $('#register .mode[data-mode="form"] .field[data-field="' + top + '"]');
      if (box) {
        box.classList.add('invalid');
        const msg = field === top ? p.reason : field + ': ' + p.reason;
        const err = $('.field-error', box);
        err.textContent = err.textContent ? err.textContent + '; ' + msg : msg;
      } else {
        general.push((field ? field + ': ' : '') + p.reason);
      }
    }
    if (general.length || !problems.length) {
      const g = $('#register-general');
      g.replaceChildren(el('strong', { text: message }), general.length ? el('ul', {}, general.map((t) => el('li', { text: t }))) : null);
      g.hidden = false;
    }
  }

  function formDocument() {
    const f = $('#register-form');
    const val = (n) => f.elements[n].value.trim();
    const doc = { server_name: val('server_name'), path: val('path'), proxy_pass_url: val('proxy_pass_url') };
    if (val('description')) doc.description = val('description');
    const tags = val('tags').split(',').map((t) => t.trim()).filter(Boolean);
    if (tags.length) doc.tags = tags;
    if (val('auth_provider')) doc.auth_provider = val('auth_provider');
    doc.auth_type = val('auth_type') || 'none';
    doc.supported_transports = $$('input[name="supported_transports"]:checked', f).map((c) => c.value);
    const headers = [];
    const bad = [];
    val('headers').split('\n').map((l) => l.trim()).filter(Boolean).forEach((line, i) => {
      const c = line.indexOf(':');
      if (c <= 0) { bad.push({ field: 'headers[' + i + ']', reason: 'write one header per line as "Name: value"' }); return; }
      headers.push({ [line.slice(0, c).trim()]: line.slice(c + 1).trim() });
    });
    if (headers.length) doc.headers = headers;
    return { doc, bad };
  }

  async function submitRegister(ev) {
    ev.preventDefault();
    clearErrors();
    let payload;
    if (registerMode === 'json') {
      payload = $('#f-json').value;
      if (!payload.trim()) { showProblems('Paste a registration.', [{ field: '', reason: 'the JSON document is empty' }]); return; }
    } else {
      const { doc, bad } = formDocument();
      if (bad.length) { showProblems('Fix the marked fields.', bad); return; }
      payload = doc;
    }
    const overwrite = $('#f-overwrite').checked ? '?overwrite=true' : '';
    try {
      const r = await api('POST', '/api/v1/servers' + overwrite, payload);
      const s = (r && r.server) || {};
      banner('Registered ' + s.server_name + ' at ' + s.path + ' (' + (s.num_tools || 0) + ' tools).' +
        (r.warnings && r.warnings.length ? ' Warnings: ' + r.warnings.join('; ') : ''), 'ok');
      $('#register-form').reset();
      $('#register').hidden = true;
      await refreshView();
    } catch (e) {
      showProblems(e.message, e.details);
    }
  }

  // ---- detail view -------------------------------------------------------

  function clientSnippets(name, url, passthrough) {
    const id = String(name).toLowerCase().replace(/[^a-z0-9_-]+/g, '-').replace(/^-+|-+$/g, '') || 'mcpgw';
    const args = ['-y', 'mcp-remote', url, '--header', 'X-Authorization:${MCPGW_AUTH}'];
    const env = { MCPGW_AUTH: 'Bearer <your mcpgw API key>' };
    const headers = { 'X-Authorization': 'Bearer <your mcpgw API key>' };
    const vsHeaders = { 'X-Authorization': 'Bearer ${input:mcpgw-token}' };
    const inputs = [{ type: 'promptString', id: 'mcpgw-token', description: 'mcpgw API key', password: true }];
    if (passthrough) {
      args.push('--header', 'Authorization:${UPSTREAM_AUTH}');
      env.UPSTREAM_AUTH = 'Bearer <the upstream access token>';
      headers.Authorization = 'Bearer <the upstream access token>';
      vsHeaders.Authorization = 'Bearer ${input:upstream-token}';
      inputs.push({ type: 'promptString', id: 'upstream-token', description: 'Upstream access token', password: true });
    }
    return [
      ['Claude Desktop', 'claude_desktop_config.json (through mcp-remote)', { mcpServers: { [id]: { command: 'npx', args, env } } }],
      ['VS Code', '.vscode/mcp.json', { inputs, servers: { [id]: { type: 'http', url, headers: vsHeaders } } }],
      ['Cursor', '~/.cursor/mcp.json', { mcpServers: { [id]: { url, headers } } }],
    ];
  }

  function snippetBlock(title, note, name, url, passthrough) {
    const snippets = clientSnippets(name, url, passthrough);
    const pre = el('pre', { class: 'snippet' });
    const file = el('p', { class: 'muted small' });
    const tabs = el('div', { class: 'tabs', role: 'tablist' });
    const show = (i) => {
      pre.textContent = JSON.stringify(snippets[i][2], null, 2);
      file.textContent = snippets[i][1];
      $$('button', tabs).forEach((b, j) => b.setAttribute('aria-selected', String(i === j)));
    };
    snippets.forEach((s, i) => tabs.append(el('button', { type: 'button', role: 'tab', onclick: () => show(i), text: s[0] })));
    const copy = el('button', { type: 'button', class: 'small', text: 'Copy', onclick: async () => {
      try { await navigator.clipboard.writeText(pre.textContent); copy.textContent = 'Copied'; } catch (_) {
        const r = document.createRange(); r.selectNodeContents(pre);
        const sel = getSelection(); sel.removeAllRanges(); sel.addRange(r); copy.textContent = 'Selected: press Ctrl+C';
      }
      setTimeout(() => { copy.textContent = 'Copy'; }, 2000);
    } });
    show(0);
    return el('div', { class: 'card snippet-card' },
      el('div', { class: 'section-head' }, el('h3', { text: title }), el('span', { class: 'spacer' }), tabs, copy),
      el('p', {}, el('code', { class: 'url', text: url }), note ? ' — ' + note : ''),
      file, pre);
  }

  function detailHealth(d) {
    const h = healthParts(d.health_status);
    return [el('span', { class: 'badge ' + healthClass(h.status), 'data-status': h.status, text: h.status }),
      h.reason ? el('span', { class: 'reason', text: ' ' + h.reason }) : null,
      el('span', { class: 'muted small', title: d.last_checked_iso || '', text: ' · ' + relTime(d.last_checked_iso) })];
  }

  // detailSignature is the detail without its health, so that a poll that
  // only brings new health updates the health in place and leaves open
  // schemas and chosen snippet tabs alone.
  function detailSignature(d) {
    return JSON.stringify(Object.assign({}, d, { health_status: null, last_checked_iso: null }));
  }

  function renderDetail(d) {
    state.detailSig = detailSignature(d);
    document.title = 'mcpgw — ' + d.server_name;
    const passthrough = d.auth_provider === 'bedrock-agentcore' || d.auth_type === 'passthrough';
    const svc = { server_name: d.server_name, path: d.path, enabled: d.enabled !== false };
    const dl = el('dl', { class: 'facts' });
    const fact = (k, v) => { if (v === undefined || v === null || v === '' || (Array.isArray(v) && !v.length)) return; dl.append(el('dt', { text: k }), el('dd', {}, v)); };
    fact('Path', el('code', { text: d.path }));
    fact('Enabled', el('span', { class: 'badge ' + (svc.enabled ? 'ok' : 'off'), 'data-enabled': String(svc.enabled), text: svc.enabled ? 'yes' : 'no' }));
    fact('Health', el('span', { id: 'detail-health' }, detailHealth(d)));
    fact('Upstream', el('code', { text: d.proxy_pass_url }));
    fact('Transports', (d.supported_transports || []).join(', '));
    fact('Auth', [d.auth_provider, d.auth_type].filter(Boolean).join(' · ') + (passthrough ? ' (the caller\'s Authorization header is passed through to the upstream)' : ''));
    fact('Tags', (d.tags || []).map((t) => tagChip(t)));
    fact('Egress headers', (d.headers || []).map((hd) => Object.keys(hd).map((k) => el('div', {}, el('code', { text: k + ': ' + hd[k] })))));
    fact('License', d.license);

    const tools = d.tool_list || [];
    const toolList = el('div', { class: 'tools' }, tools.length ? tools.map((t) => {
      const pd = t.parsed_description || {};
      return el('article', { class: 'tool card', 'data-tool': t.name },
        el('h3', {}, el('code', { text: t.name })),
        pd.main ? el('p', { class: 'desc', text: pd.main }) : el('p', { class: 'muted', text: 'No description.' }),
        pd.args ? el('p', { class: 'small' }, el('strong', { text: 'Args: ' }), pd.args) : null,
        pd.returns ? el('p', { class: 'small' }, el('strong', { text: 'Returns: ' }), pd.returns) : null,
        pd.raises ? el('p', { class: 'small' }, el('strong', { text: 'Raises: ' }), pd.raises) : null,
        t.schema ? el('details', {}, el('summary', { text: 'Input schema' }), el('pre', { class: 'schema', text: JSON.stringify(t.schema, null, 2) })) : null);
    }) : el('p', { class: 'muted', text: 'No tools are known yet: the tool list is read from the upstream when it is healthy, or on refresh.' }));

    $('#detail').replaceChildren(
      el('div', { class: 'section-head' }, el('h1', { id: 'detail-name', text: d.server_name }), el('span', { class: 'spacer' }), adminButtons(svc)),
      d.description ? el('p', { class: 'description', id: 'detail-description', text: d.description }) : null,
      dl,
      el('h2', { text: 'Tools (' + tools.length + ')' }),
      toolList,
      el('h2', { text: 'Connect a client' }),
      snippetBlock('This server', passthrough ? 'relayed to the upstream with your Authorization header' : 'relayed to the upstream', d.server_name, mcpURL(d.path), passthrough),
      snippetBlock('Every service through one URL', 'list_services, the tool finder and invoke_tool', 'mcpgw', cfg.publicURL + '/mcpgw/mcp', false));
  }

  async function loadDetail() {
    try {
      const d = await api('GET', '/api/v1/servers/' + key(cfg.path));
      if (state.detailSig === detailSignature(d)) $('#detail-health').replaceChildren(...detailHealth(d).filter(Boolean));
      else renderDetail(d);
    } catch (e) {
      $('#detail').replaceChildren(el('p', { class: 'banner error', text: e.status === 404
        ? 'No service is registered at ' + cfg.path + ' (or you may not see it).' : 'Could not load ' + cfg.path + ': ' + e.message }));
    }
  }

  // ---- session -----------------------------------------------------------

  function showSignIn(show) {
    const wasHidden = $('#signin').hidden;
    $('#signin').hidden = !show;
    if (show && wasHidden) $('#signin-token').focus();
  }

  async function signIn(ev) {
    ev.preventDefault();
    const field = $('#signin .field[data-field="token"]');
    const err = $('.field-error', field);
    err.textContent = '';
    field.classList.remove('invalid');
    try {
      await api('POST', '/ui/login', { token: $('#signin-token').value });
      location.reload();
    } catch (e) {
      field.classList.add('invalid');
      err.textContent = e.message;
    }
  }

  async function signOut() {
    try { await api('POST', '/ui/logout'); } catch (_) { /* the cookie may be gone already */ }
    location.reload();
  }

  // ---- wiring ------------------------------------------------------------

  async function refreshView() {
    if (state.polling) return;
    state.polling = true;
    try {
      if (cfg.view === 'detail') await loadDetail();
      else await loadList();
    } catch (e) {
      if (e.status !== 401) banner('Could not load the services: ' + e.message, 'error'); // api() has asked to sign in
    } finally {
      state.polling = false;
    }
  }

  function init() {
    if (cfg.error) banner(cfg.error, 'error');
    const open = $('#signin-open');
    if (open) open.addEventListener('click', () => showSignIn(true));
    const out = $('#signout');
    if (out) out.addEventListener('click', signOut);
    $('#signin-form').addEventListener('submit', signIn);
    $('#signin-cancel').addEventListener('click', () => showSignIn(false));

    if (cfg.view === 'detail') {
      $('#detail-view').hidden = false;
    } else {
      $('#list-view').hidden = false;
      $('#search-form').addEventListener('submit', (ev) => { ev.preventDefault(); search(); });
      if (cfg.admin) {
        const ro = $('#register-open');
        ro.hidden = false;
        ro.addEventListener('click', () => { $('#register').hidden = false; clearErrors(); $('#f-server_name').focus(); });
        $('#register-cancel').addEventListener('click', () => { $('#register').hidden = true; });
        $('#register-form').addEventListener('submit', submitRegister);
        for (const t of $$('#register .tabs [data-mode]')) t.addEventListener('click', () => setRegisterMode(t.dataset.mode));
      }
    }
    refreshView();
    // Health changes are picked up by polling; a hidden tab does not poll.
    setInterval(() => { if (!document.hidden) refreshView(); }, cfg.pollMs);
    document.addEventListener('visibilitychange', () => { if (!document.hidden) refreshView(); });
  }

  init();
}());
