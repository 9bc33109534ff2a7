// Every string of the UI in Chinese and English, the translation of the server's (Chinese) error
// messages, the current language, and the static text of the page (data-i18n attributes).

import { stored, store, $ } from './dom.js';
import { CATEGORIES } from './state.js';

const LANG_KEY = 'imgvault.lang';

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
  '不支持的文件格式，请上传 PNG、JPG、JPEG、GIF、WebP 或 AVIF 格式的图片':
    'Unsupported file format: please upload a PNG, JPG, JPEG, GIF, WebP or AVIF image',
  '图片文件已损坏或不完整：数据在图片结束之前中断':
    'The image file is damaged or incomplete: its data ends before the image does',
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

// Messages that name a part: the pattern, and the English with $1 for it.
const SERVER_EN_PATTERNS = [
  [/^不支持的文件格式：(.+)。请上传 (.+) 格式的图片$/, 'Unsupported file format: $1. Please upload a $2 image'],
  [/^图片文件已损坏或不完整：不是有效的 (.+) 文件$/, 'The image file is damaged or incomplete: not a valid $1 file'],
  [/^图片尺寸过大：(\d+)×(\d+) 像素，单边最大 (\d+) 像素$/, 'The image is too large: $1×$2 pixels, over $3 pixels on a side'],
  [/^图片尺寸过大：(\d+)×(\d+) 像素，总像素最多 (\d+)$/, 'The image is too large: $1×$2 pixels, over $3 pixels in all'],
  [/^图片尺寸过大：(\d+)×(\d+) 像素，解码后最多 (\d+) MB$/, 'The image is too large: $1×$2 pixels, over $3 MB decoded'],
  [/^图片尺寸过大：(\d+)×(\d+) 像素，解码需要约 (\d+) MB 内存，超过上限 (\d+) MB$/, 'The image is too large: $1×$2 pixels; decoding it takes about $3 MB of memory, over the limit of $4 MB'],
];
const PART_EN = {
  '无损 JPEG': 'lossless JPEG',
  '分层 JPEG': 'hierarchical JPEG',
  '12 位 JPEG': '12-bit JPEG',
  '动画 AVIF': 'animated AVIF',
  '超过 16 MiB 的元数据': 'metadata over 16 MiB',
};

export let lang = stored(LANG_KEY) === 'en' ? 'en' : 'zh';

/** Switches the language and remembers it; the caller draws the page again. */
export function setLang(next) {
  lang = next;
  store(LANG_KEY, lang);
}

export function t(key, vars) {
  let s = I18N[lang][key];
  if (s === undefined) s = I18N.zh[key];
  if (s === undefined) return key;
  if (vars) s = s.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m));
  return s;
}

/** A message from the server, shown as the server wrote it (translated in English mode). */
export function serverText(message) {
  const text = String(message);
  if (lang !== 'en') return text;
  if (SERVER_EN[text]) return SERVER_EN[text];
  for (const [pattern, english] of SERVER_EN_PATTERNS) {
    const found = text.match(pattern);
    if (found) {
      return english.replace(/\$(\d)/g, (m, i) => {
        const part = found[Number(i)];
        return PART_EN[part] || part.replace(/、| 或 /g, ', ');
      });
    }
  }
  return text;
}

export function catName(cat) {
  return t('cat.' + (CATEGORIES.includes(cat) ? cat : 'clothes'));
}

export function formatCount(n) {
  return Number(n || 0).toLocaleString(lang === 'en' ? 'en-US' : 'zh-CN');
}

export function applyLanguage() {
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
