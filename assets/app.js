// imgvault web UI: plain JavaScript, no framework, no build step, no network beyond this server.
//
// Safety rule for this file: text that comes from image metadata (page titles, URLs, alt text,
// captions, file names) is only ever written with textContent or setAttribute, never as HTML, and
// only http(s) URLs become links.
(() => {
  'use strict';

  const MAX_BYTES = 10 * 1024 * 1024; // the server's limit for one image
  const PER_PAGE = 48;
  const MAX_PARALLEL_UPLOADS = 3;
  const CATEGORIES = ['clothes', 'char'];
  const LANG_KEY = 'imgvault.lang';
  const CATEGORY_KEY = 'imgvault.uploadCategory';

  // ---------------------------------------------------------------------------------------------
  // Text
  // ---------------------------------------------------------------------------------------------

  const I18N = {
    zh: {
      'skip': '跳到主要内容',
      'loading': '加载中…',
      'close': '关闭',
      'cancel': '取消',
      'stat.server': '服务器共',
      'stat.images': '张图片',
      'stat.title': '服务器上保存的图片总数',
      'sync.button': '云端同步',
      'logout': '退出登录',
      'login.jump': '登录',
      'lang.switch': 'Switch to English',
      'auth.title': '登录以管理你的图片',
      'auth.lead': '登录后可以浏览、查看和删除你保存的图片。',
      'login.tab': '登录',
      'register.tab': '注册',
      'field.username': '用户名',
      'field.password': '密码',
      'field.email': '邮箱',
      'field.remember': '7 天内保持登录',
      'field.usernameHint': '3–20 位，字母、数字、下划线、连字符或点',
      'field.passwordHint': '至少 6 位',
      'field.required': '请填写{field}',
      'login.submit': '登录',
      'register.submit': '注册并登录',
      'register.thenLogin': '注册成功，请登录',
      'upload.title': '上传图片',
      'upload.category': '保存到分类',
      'upload.categoryShort': '分类',
      'upload.anonNote': '未登录也可以上传：图片会保存到管理员账户。登录后可以管理自己的图片。',
      'upload.drop': '把图片拖到这里',
      'upload.dropNow': '松开鼠标，上传到“{cat}”',
      'upload.pick': '选择文件',
      'upload.paste': '从剪贴板粘贴',
      'upload.hintPaste': '也可以直接按 Ctrl+V 粘贴。',
      'upload.hintFormats': '支持 PNG、JPG、GIF、WebP，单个文件不超过 10 MB。',
      'upload.queue': '上传列表',
      'upload.clear': '清除已完成',
      'up.queued': '等待上传',
      'up.reading': '读取中…',
      'up.uploading': '上传中 {p}%',
      'up.processing': '已上传，正在处理…',
      'up.saved': '已保存到“{cat}”',
      'up.savedAnon': '已保存到管理员账户的“{cat}”。登录后可管理自己的图片',
      'up.processFailed': '已保存，但处理失败：{msg}',
      'up.network': '网络错误，上传失败',
      'up.clipName': '剪贴板图片',
      'clip.unsupported': '这个浏览器不允许网页读取剪贴板，请按 Ctrl+V（⌘V）粘贴',
      'clip.denied': '没有读取剪贴板的权限，请按 Ctrl+V（⌘V）粘贴',
      'clip.empty': '剪贴板里没有图片',
      'clip.failed': '读取剪贴板失败：{msg}',
      'cat.all': '全部',
      'cat.clothes': '服装',
      'cat.char': '角色',
      'gallery.title': '我的图片',
      'gallery.filter': '按分类筛选',
      'gallery.count': '共 {n} 张',
      'gallery.countCat': '{n} 张',
      'gallery.countCatMore': '已加载 {n} 张，继续加载中',
      'gallery.more': '加载更多',
      'gallery.loading': '正在加载…',
      'gallery.end': '已全部加载',
      'gallery.error': '加载失败：{msg}',
      'gallery.retry': '重试',
      'empty.all': '还没有图片。把图片拖到上面、粘贴，或选择文件上传第一张。',
      'empty.cat': '“{cat}”分类里还没有图片。',
      'thumb.open': '查看 {title}',
      'meta.dimensions': '尺寸',
      'meta.dimsValue': '{w} × {h} 像素',
      'meta.size': '文件大小',
      'meta.bytes': '{n} 字节',
      'meta.saved': '保存时间',
      'meta.page': '来源页面',
      'meta.original': '原始地址',
      'meta.alt': '替代文本',
      'meta.caption': '图片说明',
      'meta.filename': '文件名',
      'meta.none': '无',
      'viewer.prev': '上一张',
      'viewer.next': '下一张',
      'viewer.download': '下载原图',
      'viewer.delete': '删除',
      'confirm.title': '删除这张图片？',
      'confirm.text': '图片会从你的图片库中永久删除，无法恢复。',
      'confirm.ok': '删除',
      'toast.deleted': '图片已删除',
      'toast.loggedOut': '已退出登录',
      'toast.sessionLost': '登录已过期，请重新登录',
      'sync.starting': '正在启动云端同步…',
      'sync.running': '正在同步…',
      'sync.progress': '正在同步… {p}%',
      'sync.done': '同步完成',
      'sync.started': '同步任务已启动',
      'sync.info': '{n} 张图片，预计用时 {time}',
      'sync.synced': '已同步 {n} / {total} 张',
      'sync.missing': '{n} 个文件缺失',
      'sync.refused': '{n} 张被云端拒绝',
      'sync.stillRunning': '同步仍在后台进行，稍后再来查看',
      'sync.failed': '同步失败：{msg}',
      'err.network': '无法连接服务器',
      'err.http': '服务器返回错误（HTTP {status}）',
      'ext.summary': '浏览器插件：在任意网页上右键保存图片',
      'ext.download': '下载插件（zip）',
      'ext.step1': '解压下载的 zip 文件。',
      'ext.step2chrome': 'Chrome / Edge：打开',
      'ext.step2chromeTail': '，开启“开发者模式”，点击“加载已解压的扩展程序”，选择解压后的文件夹。',
      'ext.step2firefox': 'Firefox：打开',
      'ext.step2firefoxTail': '，点击“临时载入附加组件”，选择文件夹中的 manifest.json。',
      'ext.step3': '在插件的设置页填写服务器地址：',
      'footer.note': 'imgvault · 自托管图片库',
    },
    en: {
      'skip': 'Skip to content',
      'loading': 'Loading…',
      'close': 'Close',
      'cancel': 'Cancel',
      'stat.server': '',
      'stat.images': 'images on this server',
      'stat.title': 'Images stored on this server',
      'sync.button': 'Cloud sync',
      'logout': 'Log out',
      'login.jump': 'Log in',
      'lang.switch': '切换到中文',
      'auth.title': 'Log in to manage your images',
      'auth.lead': 'Browse, view and delete the images you have saved.',
      'login.tab': 'Log in',
      'register.tab': 'Register',
      'field.username': 'Username',
      'field.password': 'Password',
      'field.email': 'Email',
      'field.remember': 'Keep me logged in for 7 days',
      'field.usernameHint': '3–20 characters: letters, digits, _ - or .',
      'field.passwordHint': 'At least 6 characters',
      'field.required': 'Please enter your {field}',
      'login.submit': 'Log in',
      'register.submit': 'Register and log in',
      'register.thenLogin': 'Registered. Please log in.',
      'upload.title': 'Upload images',
      'upload.category': 'Save to category',
      'upload.categoryShort': 'Category',
      'upload.anonNote': 'You can upload without an account: images go to the admin account. Log in to manage your own images.',
      'upload.drop': 'Drop images here',
      'upload.dropNow': 'Drop to upload to “{cat}”',
      'upload.pick': 'Choose files',
      'upload.paste': 'Paste from clipboard',
      'upload.hintPaste': 'Or press Ctrl+V to paste.',
      'upload.hintFormats': 'PNG, JPG, GIF or WebP, up to 10 MB each.',
      'upload.queue': 'Uploads',
      'upload.clear': 'Clear finished',
      'up.queued': 'Waiting',
      'up.reading': 'Reading…',
      'up.uploading': 'Uploading {p}%',
      'up.processing': 'Uploaded, processing…',
      'up.saved': 'Saved to “{cat}”',
      'up.savedAnon': 'Saved to the admin account (“{cat}”). Log in to manage your own images',
      'up.processFailed': 'Saved, but processing failed: {msg}',
      'up.network': 'Network error: upload failed',
      'up.clipName': 'Pasted image',
      'clip.unsupported': 'This browser does not let pages read the clipboard: press Ctrl+V (⌘V) to paste',
      'clip.denied': 'No permission to read the clipboard: press Ctrl+V (⌘V) to paste',
      'clip.empty': 'There is no image on the clipboard',
      'clip.failed': 'Could not read the clipboard: {msg}',
      'cat.all': 'All',
      'cat.clothes': 'Clothes',
      'cat.char': 'Characters',
      'gallery.title': 'My images',
      'gallery.filter': 'Filter by category',
      'gallery.count': '{n} in total',
      'gallery.countCat': '{n}',
      'gallery.countCatMore': '{n} loaded so far',
      'gallery.more': 'Load more',
      'gallery.loading': 'Loading…',
      'gallery.end': 'That is everything',
      'gallery.error': 'Could not load: {msg}',
      'gallery.retry': 'Retry',
      'empty.all': 'No images yet. Drop, paste or choose a file above to upload your first.',
      'empty.cat': 'No images in “{cat}” yet.',
      'thumb.open': 'View {title}',
      'meta.dimensions': 'Dimensions',
      'meta.dimsValue': '{w} × {h} px',
      'meta.size': 'File size',
      'meta.bytes': '{n} bytes',
      'meta.saved': 'Saved',
      'meta.page': 'Source page',
      'meta.original': 'Original URL',
      'meta.alt': 'Alt text',
      'meta.caption': 'Caption',
      'meta.filename': 'File name',
      'meta.none': 'None',
      'viewer.prev': 'Previous image',
      'viewer.next': 'Next image',
      'viewer.download': 'Download original',
      'viewer.delete': 'Delete',
      'confirm.title': 'Delete this image?',
      'confirm.text': 'It will be removed from your vault for good. This cannot be undone.',
      'confirm.ok': 'Delete',
      'toast.deleted': 'Image deleted',
      'toast.loggedOut': 'Logged out',
      'toast.sessionLost': 'Your session has ended: please log in again',
      'sync.starting': 'Starting cloud sync…',
      'sync.running': 'Syncing…',
      'sync.progress': 'Syncing… {p}%',
      'sync.done': 'Sync finished',
      'sync.started': 'Sync started',
      'sync.info': '{n} images, about {time}',
      'sync.synced': '{n} of {total} images synced',
      'sync.missing': '{n} files missing',
      'sync.refused': '{n} refused by the cloud',
      'sync.stillRunning': 'The sync goes on in the background: check again later',
      'sync.failed': 'Sync failed: {msg}',
      'err.network': 'Cannot reach the server',
      'err.http': 'The server answered with an error (HTTP {status})',
      'ext.summary': 'Browser extension: save images from any page with a right-click',
      'ext.download': 'Download the extension (zip)',
      'ext.step1': 'Unzip the downloaded file.',
      'ext.step2chrome': 'Chrome / Edge: open',
      'ext.step2chromeTail': ', turn on “Developer mode”, click “Load unpacked” and pick the unzipped folder.',
      'ext.step2firefox': 'Firefox: open',
      'ext.step2firefoxTail': ', click “Load Temporary Add-on…” and pick manifest.json in the folder.',
      'ext.step3': 'In the extension’s options, set the server address:',
      'footer.note': 'imgvault · your self-hosted image vault',
    },
  };

  // The server speaks Chinese; in English mode its known messages are translated.
  const SERVER_EN = {
    '需要登录': 'Please log in',
    '权限不足': 'Permission denied',
    '用户名、邮箱和密码不能为空': 'Username, email and password are required',
    '用户名或邮箱已存在': 'That username or email is already taken',
    '用户名或密码错误': 'Wrong username or password',
    '用户不存在': 'No such user',
    '缺少图片数据': 'No image data',
    '剪切板中没有图片数据': 'No image data on the clipboard',
    '没有选择文件': 'No file chosen',
    '文件名为空': 'The file name is empty',
    '不支持的文件格式': 'Unsupported file format',
    '不支持的文件格式，请上传 PNG、JPG、JPEG、GIF 或 WebP 格式的图片':
      'Unsupported file format: please upload a PNG, JPG, JPEG, GIF or WebP image',
    '文件大小不能超过10MB': 'Files cannot be larger than 10 MB',
    '请求体过大': 'The request is too large',
    '无效的分类': 'Invalid category',
    '保存图片失败': 'Could not save the image',
    '保存剪切板图片失败': 'Could not save the pasted image',
    '保存上传文件失败': 'Could not save the uploaded file',
    '任务不存在': 'No such task',
    '图片不存在': 'No such image',
    '云端同步功能已禁用': 'Cloud sync is disabled',
    '用户目录不存在': 'The user folder does not exist',
    '同步请求超时': 'The sync request timed out',
    '网络请求失败': 'Network request failed',
    '云端响应错误': 'The cloud server answered with an error',
    '服务器内部错误': 'Internal server error',
    '接口不存在': 'Not found',
    '用户名长度需为3-20位': 'The username must be 3–20 characters long',
    '用户名只能包含字母、数字、下划线、连字符和点': 'The username may only contain letters, digits, _ - and .',
    '邮箱格式不正确': 'That email address does not look right',
    '密码长度至少6位': 'The password must be at least 6 characters long',
    '密码过长': 'The password is too long',
  };

  function stored(key) {
    try { return localStorage.getItem(key); } catch { return null; }
  }
  function store(key, value) {
    try { localStorage.setItem(key, value); } catch { /* private mode: not remembered */ }
  }

  let lang = stored(LANG_KEY) === 'en' ? 'en' : 'zh';

  function t(key, vars) {
    let s = I18N[lang][key];
    if (s === undefined) s = I18N.zh[key];
    if (s === undefined) return key;
    if (vars) s = s.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m));
    return s;
  }

  /** A message from the server, shown as the server wrote it (translated in English mode). */
  function serverText(message) {
    const text = String(message);
    return lang === 'en' && SERVER_EN[text] ? SERVER_EN[text] : text;
  }

  function catName(cat) {
    return t('cat.' + (CATEGORIES.includes(cat) ? cat : 'clothes'));
  }

  // ---------------------------------------------------------------------------------------------
  // DOM helpers
  // ---------------------------------------------------------------------------------------------

  const $ = (id) => document.getElementById(id);

  /** Creates an element; attrs are set with setAttribute, text with textContent. */
  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v === true ? '' : String(v));
      }
    }
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  /** The URL if it is an absolute http(s) URL, otherwise null (never a javascript: or data: link). */
  function safeHttpUrl(value) {
    if (typeof value !== 'string' || !/^\s*https?:\/\//i.test(value)) return null;
    try {
      const url = new URL(value.trim());
      return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null;
    } catch {
      return null;
    }
  }

  /** A same-origin path handed out by the server (thumbnail_url, preview_url). */
  function safePath(value) {
    return typeof value === 'string' && value.startsWith('/') && !value.startsWith('//') ? value : null;
  }

  function text(value) {
    return typeof value === 'string' ? value.trim() : '';
  }

  function formatBytes(n) {
    const bytes = Number(n) || 0;
    if (bytes < 1024) return bytes + ' B';
    if (bytes < 1024 * 1024) return (bytes / 1024).toFixed(bytes < 10 * 1024 ? 1 : 0) + ' KB';
    return (bytes / 1024 / 1024).toFixed(1) + ' MB';
  }

  function formatCount(n) {
    return Number(n || 0).toLocaleString(lang === 'en' ? 'en-US' : 'zh-CN');
  }

  /** "2025-06-13 18:45:30" (the server's local time) → "06-13 18:45" this year, else "2025-06-13". */
  function shortTime(s) {
    const m = typeof s === 'string' && s.match(/^(\d{4})-(\d\d-\d\d)[ T](\d\d:\d\d)/);
    if (!m) return text(s);
    return Number(m[1]) === new Date().getFullYear() ? `${m[2]} ${m[3]}` : `${m[1]}-${m[2]}`;
  }

  // ---------------------------------------------------------------------------------------------
  // The API
  // ---------------------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(message, status, fromServer) {
      super(message);
      this.status = status;
      this.fromServer = fromServer;
    }
    get display() {
      return this.fromServer ? serverText(this.message) : this.message;
    }
  }

  async function api(method, url, body) {
    const init = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(url, init);
    } catch {
      throw new ApiError(t('err.network'), 0, false);
    }
    let data = null;
    try {
      data = await res.json();
    } catch {
      data = null;
    }
    if (!res.ok || (data && data.success === false)) {
      const message = data && typeof data.error === 'string' ? data.error : null;
      throw new ApiError(message || t('err.http', { status: res.status }), res.status, Boolean(message));
    }
    return data || {};
  }

  /** XMLHttpRequest for uploads: fetch cannot report upload progress. */
  function xhrPost(url, body, contentType, onProgress) {
    return new Promise((resolve) => {
      const xhr = new XMLHttpRequest();
      xhr.open('POST', url);
      xhr.setRequestHeader('Accept', 'application/json');
      if (contentType) xhr.setRequestHeader('Content-Type', contentType);
      xhr.upload.addEventListener('progress', (e) => {
        if (e.lengthComputable && e.total > 0) onProgress(e.loaded / e.total);
      });
      xhr.addEventListener('load', () => {
        let data = null;
        try { data = JSON.parse(xhr.responseText); } catch { data = null; }
        resolve({ status: xhr.status, data });
      });
      xhr.addEventListener('error', () => resolve({ status: 0, data: null }));
      xhr.addEventListener('abort', () => resolve({ status: 0, data: null }));
      xhr.send(body);
    });
  }

  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  /** Polls /api/task/{id} until it is finished; calls onUpdate with each answer's task. */
  async function waitForTask(taskId, onUpdate, limitMs = 120000) {
    const started = Date.now();
    let delay = 250;
    while (Date.now() - started < limitMs) {
      await sleep(delay);
      delay = Math.min(delay * 1.6, 2000);
      let task;
      try {
        const res = await fetch('/api/task/' + encodeURIComponent(taskId), {
          credentials: 'same-origin',
          headers: { Accept: 'application/json' },
        });
        const data = await res.json().catch(() => null);
        if (!res.ok) return { status: 'unknown', error: data && data.error };
        task = data && data.status && typeof data.status === 'object' ? data.status : null;
      } catch {
        continue; // a dropped poll is retried
      }
      if (!task) return { status: 'unknown' };
      if (onUpdate) onUpdate(task);
      if (task.status === 'completed' || task.status === 'failed') return task;
    }
    return { status: 'timeout' };
  }

  // ---------------------------------------------------------------------------------------------
  // State
  // ---------------------------------------------------------------------------------------------

  const state = {
    user: null,
    images: [],          // loaded images, newest first, as the server lists them
    ids: new Set(),
    total: 0,            // the user's total, from the list
    done: false,
    loading: false,
    loadError: null,
    generation: 0,       // bumps on log in/out so stale answers are dropped
    filter: 'all',
    viewerId: null,
    uploadCategory: CATEGORIES.includes(stored(CATEGORY_KEY)) ? stored(CATEGORY_KEY) : 'clothes',
  };
  const cards = new Map(); // image id → <li>

  // ---------------------------------------------------------------------------------------------
  // Static text, language
  // ---------------------------------------------------------------------------------------------

  function applyLanguage() {
    document.documentElement.lang = lang === 'en' ? 'en' : 'zh-CN';
    for (const node of document.querySelectorAll('[data-i18n]')) {
      node.textContent = t(node.dataset.i18n);
    }
    for (const node of document.querySelectorAll('[data-i18n-attr]')) {
      for (const pair of node.dataset.i18nAttr.split(';')) {
        const [attr, key] = pair.split(':');
        if (attr && key) node.setAttribute(attr.trim(), t(key.trim()));
      }
    }
    const toggle = $('lang-toggle');
    toggle.textContent = lang === 'en' ? '中文' : 'EN';
    toggle.setAttribute('lang', lang === 'en' ? 'zh-CN' : 'en');
    toggle.setAttribute('aria-label', `${toggle.textContent} · ${t('lang.switch')}`);
    toggle.title = t('lang.switch');
    $('server-total').title = t('stat.title');
  }

  function setLanguage(next) {
    lang = next;
    store(LANG_KEY, lang);
    applyLanguage();
    // Everything drawn from data is drawn again in the new language.
    cards.clear();
    renderGallery();
    for (const item of uploads) renderUpload(item);
    if (state.viewerId) fillViewer();
    refreshStatus();
    renderSyncStatus();
    for (const form of ['login', 'register']) {
      const box = $(form + '-error');
      if (!box.hidden && box.dataset.raw) box.textContent = serverText(box.dataset.raw);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Toasts
  // ---------------------------------------------------------------------------------------------

  /** One short message at a time, at the bottom of the screen. */
  let toastTimer = 0;
  function toast(message, isError) {
    const node = el('div', { class: 'toast' + (isError ? ' is-error' : ''), 'data-testid': 'toast' }, message);
    $('toasts').replaceChildren(node);
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => node.remove(), isError ? 6000 : 3000);
  }

  // ---------------------------------------------------------------------------------------------
  // Server total (/api/status)
  // ---------------------------------------------------------------------------------------------

  let statusTimer = 0;
  async function refreshStatus() {
    try {
      const data = await api('GET', '/api/status');
      const n = Number(data.total_images) || 0;
      $('server-total-count').textContent = formatCount(n);
      $('server-total-count').dataset.value = String(n);
      $('server-total').hidden = false;
    } catch {
      // The counter is a nicety; the page works without it.
    }
  }
  function scheduleStatus() {
    clearTimeout(statusTimer);
    statusTimer = setTimeout(refreshStatus, 300);
  }

  // ---------------------------------------------------------------------------------------------
  // Views: anonymous (log in + upload) and logged in (upload + gallery)
  // ---------------------------------------------------------------------------------------------

  function showView(view) {
    document.body.dataset.view = view;
    $('boot').hidden = true;
    $('layout').hidden = false;
    const user = view === 'user';
    $('auth').hidden = user;
    $('gallery').hidden = !user;
    $('account').hidden = !user;
    $('login-jump').hidden = user;
    $('anon-note').hidden = user;
    $('sync-button').hidden = !(user && state.user && state.user.cloud_sync_enabled === true);
    if (!user) {
      syncState = null;
      renderSyncStatus();
    }
  }

  function enterUser(user) {
    state.user = user || {};
    const name = text(state.user.username) || '?';
    $('account-name').textContent = name;
    $('account-name').title = text(state.user.email);
    $('avatar').textContent = Array.from(name)[0].toUpperCase();
    resetGallery();
    showView('user');
    loadMore();
  }

  function enterAnon() {
    state.user = null;
    resetGallery();
    closeViewer();
    showView('anon');
  }

  function resetGallery() {
    state.generation += 1;
    state.images = [];
    state.ids = new Set();
    state.total = 0;
    state.done = false;
    state.loading = false;
    state.loadError = null;
    cards.clear();
    $('grid').replaceChildren();
    renderGallery();
  }

  /** A user-only call answered 401: the session is gone (expired, or logged out elsewhere). */
  function sessionLost() {
    if (!state.user) return;
    enterAnon();
    toast(t('toast.sessionLost'), true);
  }

  // ---------------------------------------------------------------------------------------------
  // Log in, register, log out
  // ---------------------------------------------------------------------------------------------

  function selectAuthTab(which) {
    const login = which === 'login';
    $('tab-login').setAttribute('aria-selected', String(login));
    $('tab-register').setAttribute('aria-selected', String(!login));
    $('tab-login').tabIndex = login ? 0 : -1;
    $('tab-register').tabIndex = login ? -1 : 0;
    $('login-form').hidden = !login;
    $('register-form').hidden = login;
  }

  function showFormMessage(form, message, raw, ok) {
    const box = $(form + '-error');
    box.textContent = message;
    box.dataset.raw = raw || '';
    box.classList.toggle('form-ok', Boolean(ok));
    box.setAttribute('role', ok ? 'status' : 'alert');
    box.hidden = false;
  }
  function clearFormMessage(form) {
    const box = $(form + '-error');
    box.hidden = true;
    box.textContent = '';
    box.dataset.raw = '';
    for (const input of $(form + '-form').querySelectorAll('input')) input.removeAttribute('aria-invalid');
  }
  function showApiError(form, err) {
    showFormMessage(form, err.display, err.fromServer ? err.message : '');
  }

  /** Checks that the listed inputs are filled; marks and focuses the first empty one. */
  function requireFilled(form, inputs) {
    for (const [input, labelKey] of inputs) {
      if (!input.value.trim()) {
        input.setAttribute('aria-invalid', 'true');
        showFormMessage(form, t('field.required', { field: t(labelKey) }));
        input.focus();
        return false;
      }
    }
    return true;
  }

  function busy(button, on) {
    button.disabled = on;
    button.setAttribute('aria-busy', String(on));
  }

  async function logIn(username, password, remember) {
    await api('POST', '/api/login', { username, password, remember_me: remember });
    const check = await api('GET', '/api/auth/check');
    if (!check.authenticated) throw new ApiError(t('err.http', { status: 401 }), 401, false);
    return check.user;
  }

  async function onLogin(event) {
    event.preventDefault();
    clearFormMessage('login');
    const username = $('login-username');
    const password = $('login-password');
    if (!requireFilled('login', [[username, 'field.username'], [password, 'field.password']])) return;
    const button = event.submitter || $('login-form').querySelector('[type=submit]');
    busy(button, true);
    try {
      const user = await logIn(username.value.trim(), password.value, $('login-remember').checked);
      password.value = '';
      enterUser(user);
    } catch (err) {
      showApiError('login', err);
      password.select();
    } finally {
      busy(button, false);
    }
  }

  async function onRegister(event) {
    event.preventDefault();
    clearFormMessage('register');
    const username = $('register-username');
    const email = $('register-email');
    const password = $('register-password');
    if (!requireFilled('register', [
      [username, 'field.username'], [email, 'field.email'], [password, 'field.password'],
    ])) return;
    const button = event.submitter || $('register-form').querySelector('[type=submit]');
    busy(button, true);
    try {
      await api('POST', '/api/register', {
        username: username.value.trim(),
        email: email.value.trim(),
        password: password.value,
      });
    } catch (err) {
      showApiError('register', err);
      busy(button, false);
      return;
    }
    try {
      const user = await logIn(username.value.trim(), password.value, true);
      enterUser(user);
      $('register-form').reset();
    } catch {
      // Registered, but the automatic log-in did not work: let the user log in by hand.
      $('login-username').value = username.value.trim();
      selectAuthTab('login');
      showFormMessage('login', t('register.thenLogin'), '', true);
      $('login-password').focus();
    } finally {
      password.value = '';
      busy(button, false);
    }
  }

  async function onLogout() {
    const button = $('logout-button');
    busy(button, true);
    try {
      await api('POST', '/api/logout');
    } catch (err) {
      if (err.status !== 401) {
        toast(err.display, true);
        busy(button, false);
        return;
      }
    }
    busy(button, false);
    enterAnon();
    selectAuthTab('login');
    clearFormMessage('login');
    toast(t('toast.loggedOut'));
  }

  // ---------------------------------------------------------------------------------------------
  // Gallery
  // ---------------------------------------------------------------------------------------------

  function categoryOf(image) {
    const c = image && image.context_info && image.context_info.category;
    if (CATEGORIES.includes(c)) return c;
    return typeof image.filename === 'string' && image.filename.startsWith('char_') ? 'char' : 'clothes';
  }

  /** The name an image came with: its page title, else its own title, alt text or original file name. */
  function givenName(image) {
    const info = image.context_info || {};
    return text(image.page_title) || text(info.title) || text(info.alt) ||
      text(info.original_filename) || text(info.originalFilename);
  }

  function formatOf(image) {
    const ext = text(image.filename).split('.').pop() || '';
    return ext.toUpperCase().replace('JPEG', 'JPG');
  }

  function dimsOf(image) {
    return image.image_width > 0 && image.image_height > 0 ? `${image.image_width} × ${image.image_height}` : '';
  }

  /** What to call an image: the name it came with, else its format and size (the stored file name
   *  is generated and says little). */
  function titleOf(image) {
    return givenName(image) || [formatOf(image), dimsOf(image)].filter(Boolean).join(' · ') ||
      text(image.filename) || image.id;
  }

  function altOf(image) {
    const info = image.context_info || {};
    return text(info.alt) || text(image.page_title) || text(info.caption) || text(image.filename);
  }

  function visibleImages() {
    return state.filter === 'all' ? state.images : state.images.filter((i) => categoryOf(i) === state.filter);
  }

  function cardFor(image) {
    let li = cards.get(image.id);
    if (li) return li;
    const cat = categoryOf(image);
    li = el('li');
    const button = el('button', {
      type: 'button',
      class: 'thumb',
      'data-testid': 'thumb',
      'data-id': image.id,
      'data-category': cat,
      'aria-label': t('thumb.open', { title: titleOf(image) }),
    });
    const media = el('span', { class: 'thumb-media' });
    const img = el('img', {
      alt: altOf(image),
      loading: 'lazy',
      decoding: 'async',
      'data-testid': 'thumb-image',
    });
    if (image.image_width > 0 && image.image_height > 0) {
      img.setAttribute('width', image.image_width);
      img.setAttribute('height', image.image_height);
    }
    img.addEventListener('load', () => img.classList.add('is-loaded'));
    img.addEventListener('error', () => media.classList.add('is-broken'));
    const src = safePath(image.thumbnail_url) || safePath(image.preview_url);
    if (src) img.src = src;
    media.append(img, el('span', { class: 'badge', 'data-category': cat }, catName(cat)));
    const body = el('span', { class: 'thumb-body' });
    // An image without a name of its own is shown by when it was saved.
    const name = givenName(image);
    const heading = name || shortTime(image.saved_at) || titleOf(image);
    const meta = name
      ? [shortTime(image.saved_at), formatBytes(image.file_size)]
      : [formatOf(image), dimsOf(image), formatBytes(image.file_size)];
    body.append(
      el('span', { class: 'thumb-title', 'data-testid': 'thumb-title', title: heading }, heading),
      el('span', { class: 'thumb-meta' }, meta.filter(Boolean).join(' · ')),
    );
    button.append(media, body);
    button.addEventListener('click', () => openViewer(image.id));
    li.append(button);
    cards.set(image.id, li);
    return li;
  }

  function renderGallery() {
    const shown = visibleImages();
    $('grid').replaceChildren(...shown.map(cardFor));

    const count = $('gallery-count');
    if (state.filter === 'all') {
      count.textContent = state.images.length || state.done ? t('gallery.count', { n: formatCount(state.total) }) : '';
    } else {
      count.textContent = state.done
        ? t('gallery.countCat', { n: formatCount(shown.length) })
        : t('gallery.countCatMore', { n: formatCount(shown.length) });
    }
    count.dataset.total = String(state.total);

    const empty = state.done && !state.loading && !state.loadError && shown.length === 0;
    $('empty').hidden = !empty;
    $('empty-text').textContent = state.filter === 'all' ? t('empty.all') : t('empty.cat', { cat: catName(state.filter) });

    $('load-spinner').hidden = !state.loading;
    const status = $('load-status');
    const more = $('load-more');
    if (state.loading) {
      status.textContent = t('gallery.loading');
      more.hidden = true;
    } else if (state.loadError) {
      status.textContent = t('gallery.error', { msg: state.loadError });
      more.textContent = t('gallery.retry');
      more.hidden = false;
    } else {
      status.textContent = state.done && shown.length > PER_PAGE ? t('gallery.end') : '';
      more.textContent = t('gallery.more');
      more.hidden = state.done || !state.user;
    }
  }

  function addImages(list, atTop) {
    const fresh = [];
    for (const image of Array.isArray(list) ? list : []) {
      if (!image || typeof image.id !== 'string' || state.ids.has(image.id)) continue;
      state.ids.add(image.id);
      fresh.push(image);
    }
    state.images = atTop ? fresh.concat(state.images) : state.images.concat(fresh);
    return fresh.length;
  }

  /** Loads the next page. Pages are counted from what is loaded, so deletions and new uploads
   *  shift nothing out of view (an overlap is dropped by id). */
  async function loadMore() {
    if (!state.user || state.loading || state.done) return;
    const generation = state.generation;
    state.loading = true;
    state.loadError = null;
    renderGallery();
    const page = Math.floor(state.images.length / PER_PAGE) + 1;
    try {
      const data = await api('GET', `/api/user/images?page=${page}&per_page=${PER_PAGE}`);
      if (generation !== state.generation) return;
      const list = Array.isArray(data.images) ? data.images : [];
      addImages(list, false);
      state.total = Number(data.total) || 0;
      const pages = Number(data.pages) || 0;
      state.done = list.length === 0 || page >= pages || state.images.length >= state.total;
    } catch (err) {
      if (generation !== state.generation) return;
      if (err.status === 401) {
        state.loading = false;
        sessionLost();
        return;
      }
      state.loadError = err.display;
    }
    state.loading = false;
    renderGallery();
    // A filter can leave the sentinel in view after a page: keep going while it is.
    requestAnimationFrame(() => {
      if (!state.loadError && sentinelInView()) loadMore();
    });
  }

  /** New uploads: page 1 again, prepending whatever is new. */
  let refreshTimer = 0;
  function scheduleRefresh() {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(refreshTop, 200);
  }
  async function refreshTop() {
    if (!state.user) return;
    const generation = state.generation;
    try {
      const data = await api('GET', `/api/user/images?page=1&per_page=${PER_PAGE}`);
      if (generation !== state.generation) return;
      addImages(data.images, true);
      state.total = Number(data.total) || state.total;
      if (state.images.length >= state.total) state.done = true;
      renderGallery();
    } catch (err) {
      if (err.status === 401) sessionLost();
    }
  }

  function sentinelInView() {
    const gallery = $('gallery');
    if (gallery.hidden) return false;
    const rect = $('sentinel').getBoundingClientRect();
    return rect.top < window.innerHeight + 600;
  }

  function setFilter(filter) {
    state.filter = filter;
    for (const b of document.querySelectorAll('#filters [data-filter]')) {
      b.setAttribute('aria-pressed', String(b.dataset.filter === filter));
    }
    renderGallery();
    requestAnimationFrame(() => {
      if (sentinelInView()) loadMore();
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Image view
  // ---------------------------------------------------------------------------------------------

  let viewerOpener = null;

  function openViewer(id) {
    if (!state.ids.has(id)) return;
    const dialog = $('viewer');
    if (!dialog.open) viewerOpener = document.activeElement;
    state.viewerId = id;
    fillViewer();
    if (!dialog.open) dialog.showModal();
    $('viewer-close').focus();
  }

  function closeViewer() {
    const dialog = $('viewer');
    if (dialog.open) dialog.close();
  }

  function fillLink(dd, url, label) {
    const safe = safeHttpUrl(url);
    if (safe) {
      const a = el('a', { href: safe, target: '_blank', rel: 'noopener noreferrer' }, label || safe);
      dd.replaceChildren(a);
    } else if (label || text(url)) {
      // Not an http(s) URL (or no URL): shown as text only, never as a link.
      dd.replaceChildren(el('span', null, label || text(url)));
    } else {
      dd.replaceChildren(el('span', { class: 'none' }, t('meta.none')));
    }
  }

  function fillViewer() {
    const image = state.images.find((i) => i.id === state.viewerId);
    if (!image) return;
    const info = image.context_info || {};
    const cat = categoryOf(image);
    $('viewer-title').textContent = titleOf(image);

    const img = $('viewer-image');
    const src = safePath(image.preview_url);
    if (img.getAttribute('src') !== src) {
      img.removeAttribute('src');
      img.classList.remove('is-loaded');
      $('viewer-spinner').hidden = false;
      if (src) img.src = src;
    }
    img.alt = altOf(image);
    if (image.image_width > 0 && image.image_height > 0) {
      img.width = image.image_width;
      img.height = image.image_height;
    }

    const badge = $('viewer-category');
    badge.textContent = catName(cat);
    badge.dataset.category = cat;

    const dims = $('viewer-dimensions');
    dims.textContent = image.image_width > 0 && image.image_height > 0
      ? t('meta.dimsValue', { w: image.image_width, h: image.image_height })
      : t('meta.none');
    const size = Number(image.file_size) || 0;
    $('viewer-size').textContent = size >= 1024
      ? `${formatBytes(size)} (${t('meta.bytes', { n: formatCount(size) })})`
      : formatBytes(size);
    $('viewer-size').dataset.bytes = String(size);
    $('viewer-saved').textContent = text(image.saved_at) || t('meta.none');
    fillLink($('viewer-page'), image.page_url, text(image.page_title));
    fillLink($('viewer-original'), image.original_url, '');

    const alt = text(info.alt);
    $('viewer-alt-row').hidden = !alt;
    $('viewer-alt').textContent = alt;
    const caption = text(info.caption);
    $('viewer-caption-row').hidden = !caption;
    $('viewer-caption').textContent = caption;
    $('viewer-filename').textContent = text(image.filename);

    const download = $('viewer-download');
    if (src) download.href = src; else download.removeAttribute('href');
    download.setAttribute('download', text(image.filename) || 'image');

    const list = visibleImages();
    const index = list.findIndex((i) => i.id === image.id);
    $('viewer-prev').disabled = index <= 0;
    $('viewer-next').disabled = index < 0 || index >= list.length - 1;
    $('viewer').dataset.id = image.id;
  }

  function stepViewer(delta) {
    const list = visibleImages();
    const index = list.findIndex((i) => i.id === state.viewerId);
    const next = list[index + delta];
    if (next) {
      state.viewerId = next.id;
      fillViewer();
      if (delta > 0 && index + delta >= list.length - 3) loadMore();
    }
  }

  /** Asks before deleting; resolves true when confirmed. */
  function confirmDelete() {
    const dialog = $('confirm');
    return new Promise((resolve) => {
      const done = (answer) => {
        $('confirm-ok').removeEventListener('click', yes);
        $('confirm-cancel').removeEventListener('click', no);
        dialog.removeEventListener('close', no);
        if (dialog.open) dialog.close();
        resolve(answer);
      };
      const yes = () => done(true);
      const no = () => done(false);
      $('confirm-ok').addEventListener('click', yes);
      $('confirm-cancel').addEventListener('click', no);
      dialog.addEventListener('close', no);
      dialog.showModal();
      $('confirm-cancel').focus();
    });
  }

  async function deleteCurrent() {
    const id = state.viewerId;
    if (!id || !(await confirmDelete())) return;
    const button = $('viewer-delete');
    busy(button, true);
    try {
      await api('DELETE', '/api/user/images/' + encodeURIComponent(id));
    } catch (err) {
      busy(button, false);
      if (err.status === 401) { sessionLost(); return; }
      if (err.status !== 404) { toast(err.display, true); return; }
      // 404: already gone; drop it from the page all the same.
    }
    busy(button, false);
    state.images = state.images.filter((i) => i.id !== id);
    state.ids.delete(id);
    cards.delete(id);
    state.total = Math.max(0, state.total - 1);
    viewerOpener = null;
    closeViewer();
    renderGallery();
    toast(t('toast.deleted'));
    scheduleStatus();
    requestAnimationFrame(() => {
      if (sentinelInView()) loadMore();
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Uploads
  // ---------------------------------------------------------------------------------------------

  const uploads = [];
  const waiting = [];
  let active = 0;
  let uploadSeq = 0;

  function setUploadCategory(cat) {
    state.uploadCategory = cat;
    store(CATEGORY_KEY, cat);
    for (const r of document.querySelectorAll('input[name="upload-category"]')) r.checked = r.value === cat;
  }

  /** sources: [{ blob, name, clipboard }] */
  function addUploads(sources) {
    if (!sources.length) return;
    $('uploads').hidden = false;
    for (const src of sources) {
      const item = {
        id: ++uploadSeq,
        blob: src.blob,
        name: src.name,
        size: src.blob.size,
        clipboard: Boolean(src.clipboard),
        category: state.uploadCategory,
        phase: 'queued',
        progress: 0,
        message: null,   // a server message (error or warning), shown as the server wrote it
        node: null,
        preview: null,
      };
      uploads.push(item);
      buildUpload(item);
      if (item.size > MAX_BYTES) {
        // The server would refuse it too; no need to send 10 MB to hear that.
        item.phase = 'error';
        item.message = '文件大小不能超过10MB';
        renderUpload(item);
      } else {
        waiting.push(item);
      }
    }
    pump();
  }

  function buildUpload(item) {
    const li = el('li', { class: 'upload-item', 'data-testid': 'upload-item' });
    // A local preview; a file the browser cannot show keeps the plain placeholder.
    const thumb = el('span', { class: 'upload-thumb', 'aria-hidden': 'true' });
    if (item.blob.type && item.blob.type.startsWith('image/')) {
      item.preview = URL.createObjectURL(item.blob);
      const img = el('img', { alt: '' });
      img.addEventListener('error', () => img.remove());
      img.src = item.preview;
      thumb.append(img);
    }
    const line = el('div', { class: 'upload-line' });
    line.append(
      el('span', { class: 'upload-name', 'data-testid': 'upload-name', title: item.name }, item.name),
      el('span', { class: 'upload-meta' }),
    );
    const bar = el('div', { class: 'upload-progress' });
    const progress = el('progress', { max: '1', value: '0', 'data-testid': 'upload-progress' });
    progress.setAttribute('aria-label', item.name);
    bar.append(progress, el('span', { class: 'upload-status', 'data-testid': 'upload-status' }));
    li.append(thumb, line, bar);
    item.node = li;
    $('upload-list').prepend(li);
    renderUpload(item);
  }

  function uploadStatusText(item) {
    switch (item.phase) {
      case 'queued': return t('up.queued');
      case 'reading': return t('up.reading');
      case 'uploading': return t('up.uploading', { p: Math.round(item.progress * 100) });
      case 'processing': return t('up.processing');
      case 'done':
        return item.anonymous ? t('up.savedAnon', { cat: catName(item.category) }) : t('up.saved', { cat: catName(item.category) });
      case 'warn': return t('up.processFailed', { msg: serverText(item.message) });
      case 'error': return item.message ? serverText(item.message) : t('up.network');
      default: return '';
    }
  }

  function renderUpload(item) {
    const li = item.node;
    if (!li) return;
    const final = item.phase === 'done' || item.phase === 'warn';
    li.className = 'upload-item' + (final ? ' is-done' : '') + (item.phase === 'warn' ? ' is-warn' : '') +
      (item.phase === 'error' ? ' is-error' : '');
    li.dataset.state = item.phase;
    li.querySelector('.upload-meta').textContent = `${formatBytes(item.size)} · ${catName(item.category)}`;
    const progress = li.querySelector('progress');
    if (item.phase === 'processing' || item.phase === 'reading') {
      progress.removeAttribute('value'); // indeterminate
    } else {
      progress.value = final ? 1 : item.progress;
    }
    const status = li.querySelector('.upload-status');
    status.textContent = uploadStatusText(item);
    status.setAttribute('role', item.phase === 'error' ? 'alert' : 'status');
  }

  function pump() {
    while (active < MAX_PARALLEL_UPLOADS && waiting.length) {
      const item = waiting.shift();
      active += 1;
      runUpload(item).finally(() => {
        active -= 1;
        pump();
      });
    }
  }

  function readAsDataUrl(blob) {
    return new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.addEventListener('load', () => resolve(String(reader.result)));
      reader.addEventListener('error', () => reject(reader.error));
      reader.readAsDataURL(blob);
    });
  }

  async function runUpload(item) {
    const onProgress = (fraction) => {
      item.progress = fraction;
      renderUpload(item);
    };
    let answer;
    if (item.clipboard) {
      item.phase = 'reading';
      renderUpload(item);
      let dataUrl;
      try {
        dataUrl = await readAsDataUrl(item.blob);
      } catch (err) {
        item.phase = 'error';
        item.message = t('clip.failed', { msg: err && err.message ? err.message : '?' });
        renderUpload(item);
        return;
      }
      item.phase = 'uploading';
      renderUpload(item);
      answer = await xhrPost('/api/upload-clipboard',
        JSON.stringify({ imageData: dataUrl, category: item.category }), 'application/json', onProgress);
    } else {
      item.phase = 'uploading';
      renderUpload(item);
      const form = new FormData();
      form.append('category', item.category);
      form.append('file', item.blob, item.name);
      answer = await xhrPost('/api/upload-file', form, null, onProgress);
    }

    const data = answer.data;
    if (answer.status < 200 || answer.status >= 300 || !data || data.success === false) {
      item.phase = 'error';
      item.message = data && typeof data.error === 'string'
        ? data.error
        : answer.status ? t('err.http', { status: answer.status }) : null;
      renderUpload(item);
      return;
    }
    item.anonymous = data.isLoggedIn === false;
    if (CATEGORIES.includes(data.category)) item.category = data.category;
    item.progress = 1;
    if (state.user && !item.anonymous) scheduleRefresh();
    scheduleStatus();

    if (typeof data.taskId === 'string' && data.taskId) {
      item.phase = 'processing';
      renderUpload(item);
      const task = await waitForTask(data.taskId, null, 60000);
      if (task.status === 'failed') {
        item.phase = 'warn';
        item.message = typeof task.error === 'string' ? task.error : '';
        renderUpload(item);
        return;
      }
    }
    item.phase = 'done';
    renderUpload(item);
  }

  function clearFinished() {
    for (let i = uploads.length - 1; i >= 0; i -= 1) {
      const item = uploads[i];
      if (['done', 'warn', 'error'].includes(item.phase)) {
        item.node.remove();
        if (item.preview) URL.revokeObjectURL(item.preview);
        uploads.splice(i, 1);
      }
    }
    $('uploads').hidden = uploads.length === 0;
  }

  function filesToSources(files, clipboard) {
    const stamp = new Date().toTimeString().slice(0, 8);
    return Array.from(files).map((file, i) => {
      let name = file.name;
      if (clipboard && (!name || /^image\.\w+$/i.test(name))) {
        const ext = (file.type.split('/')[1] || 'png').replace('jpeg', 'jpg');
        name = `${t('up.clipName')} ${stamp}${files.length > 1 ? '-' + (i + 1) : ''}.${ext}`;
      }
      return { blob: file, name: name || 'image', clipboard };
    });
  }

  function imageFilesFrom(dataTransfer) {
    const files = [];
    if (!dataTransfer) return files;
    for (const item of Array.from(dataTransfer.items || [])) {
      if (item.kind === 'file' && item.type.startsWith('image/')) {
        const file = item.getAsFile();
        if (file) files.push(file);
      }
    }
    if (!files.length) {
      for (const file of Array.from(dataTransfer.files || [])) {
        if (file.type.startsWith('image/')) files.push(file);
      }
    }
    return files;
  }

  function isEditable(target) {
    return target instanceof HTMLElement &&
      (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
  }

  function onPaste(event) {
    const files = imageFilesFrom(event.clipboardData);
    if (!files.length) {
      if (!isEditable(event.target)) toast(t('clip.empty'));
      return;
    }
    event.preventDefault();
    addUploads(filesToSources(files, true));
  }

  async function onPasteButton() {
    if (!navigator.clipboard || typeof navigator.clipboard.read !== 'function') {
      toast(t('clip.unsupported'), true);
      return;
    }
    let items;
    try {
      items = await navigator.clipboard.read();
    } catch (err) {
      const denied = err && (err.name === 'NotAllowedError' || err.name === 'SecurityError');
      toast(denied ? t('clip.denied') : t('clip.failed', { msg: err && err.message ? err.message : '?' }), true);
      return;
    }
    const files = [];
    for (const item of items) {
      const type = item.types.find((ty) => ty.startsWith('image/'));
      if (!type) continue;
      try {
        const blob = await item.getType(type);
        files.push(new File([blob], '', { type }));
      } catch {
        // an entry that cannot be read is skipped
      }
    }
    if (!files.length) {
      toast(t('clip.empty'));
      return;
    }
    addUploads(filesToSources(files, true));
  }

  // Drag and drop anywhere on the page.
  let dragDepth = 0;
  function hasFiles(event) {
    return Boolean(event.dataTransfer && Array.from(event.dataTransfer.types || []).includes('Files'));
  }
  function showDrop(on) {
    $('drop-overlay').hidden = !on;
    $('dropzone').classList.toggle('is-over', on);
    if (on) $('drop-overlay-text').textContent = t('upload.dropNow', { cat: catName(state.uploadCategory) });
  }

  // ---------------------------------------------------------------------------------------------
  // Cloud sync (only offered when the account has it enabled)
  // ---------------------------------------------------------------------------------------------

  let syncState = null; // { phase: 'running'|'done'|'error', text, progress }

  function renderSyncStatus() {
    const box = $('sync-status');
    if (!syncState) {
      box.hidden = true;
      return;
    }
    box.hidden = false;
    box.classList.toggle('is-error', syncState.phase === 'error');
    box.dataset.state = syncState.phase;
    const bar = $('sync-progress');
    bar.hidden = syncState.phase === 'error';
    if (syncState.phase === 'running' && typeof syncState.progress !== 'number') bar.removeAttribute('value');
    else bar.value = syncState.phase === 'done' ? 1 : syncState.progress || 0;
    $('sync-text').textContent = typeof syncState.text === 'function' ? syncState.text() : syncState.text;
    $('sync-dismiss').hidden = syncState.phase === 'running';
  }

  /** Progress of a sync task: a fraction (0–1) and a description, from either a bare number or the
   *  server's object ({ total_images, synced_images, total_files_missing, refused_count, … }). */
  function syncProgressOf(task) {
    const p = task && task.progress;
    if (p && typeof p === 'object') {
      const total = Number(p.total_images) || 0;
      const synced = Number(p.synced_images) || 0;
      return {
        fraction: total > 0 ? Math.min(1, synced / total) : undefined,
        synced,
        total,
        missing: Number(p.total_files_missing) || 0,
        refused: Number(p.refused_count) || 0,
      };
    }
    const n = Number(p);
    if (p !== undefined && p !== null && Number.isFinite(n)) return { fraction: n > 1 ? n / 100 : n };
    return null;
  }

  function syncSummary(progress) {
    if (!progress || progress.synced === undefined) return '';
    const parts = [t('sync.synced', { n: formatCount(progress.synced), total: formatCount(progress.total) })];
    if (progress.missing) parts.push(t('sync.missing', { n: formatCount(progress.missing) }));
    if (progress.refused) parts.push(t('sync.refused', { n: formatCount(progress.refused) }));
    return parts.join(' · ');
  }

  async function onSync() {
    const button = $('sync-button');
    busy(button, true);
    syncState = { phase: 'running', text: () => t('sync.starting') };
    renderSyncStatus();
    try {
      const data = await api('POST', '/api/cloud/sync');
      const info = data.sync_info && typeof data.sync_info === 'object' ? data.sync_info : null;
      const started = typeof data.message === 'string' && data.message ? data.message : '';
      const detail = () => (info && info.image_count !== undefined
        ? t('sync.info', { n: formatCount(info.image_count), time: text(String(info.estimated_time || '')) || '?' })
        : '');
      if (typeof data.taskId === 'string' && data.taskId) {
        syncState = {
          phase: 'running',
          text: () => [started ? serverText(started) : t('sync.running'), detail()].filter(Boolean).join(' · '),
        };
        renderSyncStatus();
        let last = null;
        const task = await waitForTask(data.taskId, (task) => {
          const progress = syncProgressOf(task);
          if (!progress) return;
          last = progress;
          syncState.progress = progress.fraction;
          syncState.text = () => {
            const summary = syncSummary(progress);
            if (summary) return `${t('sync.running')} ${summary}`;
            return typeof progress.fraction === 'number'
              ? t('sync.progress', { p: Math.round(progress.fraction * 100) })
              : t('sync.running');
          };
          renderSyncStatus();
        }, 10 * 60 * 1000);
        const final = syncProgressOf(task) || last;
        if (task.status === 'failed') {
          const why = typeof task.error === 'string' && task.error ? task.error : '?';
          syncState = {
            phase: 'error',
            text: () => [t('sync.failed', { msg: serverText(why) }), syncSummary(final)].filter(Boolean).join(' · '),
          };
        } else if (task.status === 'timeout' || task.status === 'unknown') {
          syncState = { phase: 'done', text: () => t('sync.stillRunning') };
        } else {
          syncState = { phase: 'done', text: () => [t('sync.done'), syncSummary(final) || detail()].filter(Boolean).join(' · ') };
        }
      } else {
        syncState = {
          phase: 'done',
          text: () => [started ? serverText(started) : t('sync.started'), detail()].filter(Boolean).join(' · '),
        };
      }
      scheduleRefresh();
    } catch (err) {
      if (err.status === 401) { busy(button, false); sessionLost(); return; }
      syncState = { phase: 'error', text: () => t('sync.failed', { msg: err.display }) };
    }
    busy(button, false);
    renderSyncStatus();
  }

  // ---------------------------------------------------------------------------------------------
  // Wiring
  // ---------------------------------------------------------------------------------------------

  /** A click on a modal dialog's backdrop (outside its box), not on its own padding. */
  function onBackdrop(dialog, event) {
    if (event.target !== dialog) return false;
    const r = dialog.getBoundingClientRect();
    return event.clientX < r.left || event.clientX > r.right || event.clientY < r.top || event.clientY > r.bottom;
  }

  function bind() {
    $('lang-toggle').addEventListener('click', () => setLanguage(lang === 'en' ? 'zh' : 'en'));
    $('logout-button').addEventListener('click', onLogout);
    $('login-jump').addEventListener('click', () => {
      selectAuthTab('login');
      $('auth').scrollIntoView({ behavior: 'smooth', block: 'start' });
      $('login-username').focus({ preventScroll: true });
    });
    $('sync-button').addEventListener('click', onSync);
    $('sync-dismiss').addEventListener('click', () => { syncState = null; renderSyncStatus(); });

    // Auth tabs (click, and arrow keys as tabs should).
    $('tab-login').addEventListener('click', () => selectAuthTab('login'));
    $('tab-register').addEventListener('click', () => selectAuthTab('register'));
    for (const tab of [$('tab-login'), $('tab-register')]) {
      tab.addEventListener('keydown', (e) => {
        if (e.key === 'ArrowLeft' || e.key === 'ArrowRight') {
          const next = tab.id === 'tab-login' ? 'register' : 'login';
          selectAuthTab(next);
          $('tab-' + next).focus();
          e.preventDefault();
        }
      });
    }
    $('login-form').addEventListener('submit', onLogin);
    $('register-form').addEventListener('submit', onRegister);
    for (const input of document.querySelectorAll('.form input')) {
      input.addEventListener('input', () => input.removeAttribute('aria-invalid'));
    }

    // Upload sources.
    for (const radio of document.querySelectorAll('input[name="upload-category"]')) {
      radio.addEventListener('change', () => { if (radio.checked) setUploadCategory(radio.value); });
    }
    $('pick-button').addEventListener('click', () => $('file-input').click());
    $('file-input').addEventListener('change', (e) => {
      const input = e.target;
      addUploads(filesToSources(input.files || [], false));
      input.value = '';
    });
    // The Clipboard API exists only in secure contexts (https, localhost); elsewhere (plain http on
    // a LAN) the button would only fail, and Ctrl+V still works.
    $('paste-button').hidden = !(navigator.clipboard && typeof navigator.clipboard.read === 'function');
    $('paste-button').addEventListener('click', onPasteButton);
    $('clear-uploads').addEventListener('click', clearFinished);
    document.addEventListener('paste', onPaste);

    document.addEventListener('dragenter', (e) => {
      if (!hasFiles(e)) return;
      e.preventDefault();
      dragDepth += 1;
      showDrop(true);
    });
    document.addEventListener('dragover', (e) => {
      if (!hasFiles(e)) return;
      e.preventDefault();
      e.dataTransfer.dropEffect = 'copy';
    });
    document.addEventListener('dragleave', (e) => {
      if (!hasFiles(e)) return;
      dragDepth = Math.max(0, dragDepth - 1);
      if (dragDepth === 0) showDrop(false);
    });
    document.addEventListener('drop', (e) => {
      if (!hasFiles(e)) return;
      e.preventDefault();
      dragDepth = 0;
      showDrop(false);
      addUploads(filesToSources(e.dataTransfer.files, false));
    });

    // Gallery.
    for (const b of document.querySelectorAll('#filters [data-filter]')) {
      b.addEventListener('click', () => setFilter(b.dataset.filter));
    }
    $('load-more').addEventListener('click', () => {
      state.loadError = null;
      loadMore();
    });
    if ('IntersectionObserver' in window) {
      new IntersectionObserver((entries) => {
        if (entries.some((e) => e.isIntersecting)) loadMore();
      }, { rootMargin: '600px 0px' }).observe($('sentinel'));
    }

    // Image view.
    const viewer = $('viewer');
    $('viewer-close').addEventListener('click', closeViewer);
    $('viewer-prev').addEventListener('click', () => stepViewer(-1));
    $('viewer-next').addEventListener('click', () => stepViewer(1));
    $('viewer-delete').addEventListener('click', deleteCurrent);
    $('viewer-image').addEventListener('load', () => { $('viewer-spinner').hidden = true; });
    $('viewer-image').addEventListener('error', () => { $('viewer-spinner').hidden = true; });
    viewer.addEventListener('click', (e) => { if (onBackdrop(viewer, e)) closeViewer(); });
    viewer.addEventListener('keydown', (e) => {
      if ($('confirm').open || isEditable(e.target)) return;
      if (e.key === 'ArrowLeft') { stepViewer(-1); e.preventDefault(); }
      if (e.key === 'ArrowRight') { stepViewer(1); e.preventDefault(); }
    });
    viewer.addEventListener('close', () => {
      state.viewerId = null;
      delete viewer.dataset.id;
      const back = viewerOpener;
      viewerOpener = null;
      if (back && back.isConnected) back.focus();
    });
    $('confirm').addEventListener('click', (e) => { if (onBackdrop($('confirm'), e)) $('confirm').close(); });

    window.addEventListener('beforeunload', (e) => {
      if (active > 0 || waiting.length > 0) e.preventDefault();
    });
  }

  async function start() {
    $('server-address').textContent = location.origin;
    setUploadCategory(state.uploadCategory);
    applyLanguage();
    bind();
    refreshStatus();
    let check = null;
    try {
      check = await api('GET', '/api/auth/check');
    } catch {
      check = null;
    }
    if (check && check.authenticated) enterUser(check.user);
    else enterAnon();
    document.body.dataset.ready = 'true';
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
