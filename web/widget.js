/*!
 * Kefu chat widget. One tag embeds it on any page:
 *
 *   <script src="https://HOST/web/widget.js" data-widget-key="demo-key" data-lang="auto"
 *           data-color="#2f6fed" data-position="right" async></script>
 *
 * Optional attributes: data-identity (a JWT the company's backend signs with the tenant's
 * identity secret for a logged-in customer), data-avatar, data-greeting, data-title,
 * data-api (HTTP base, default: the script's origin), data-ws (WebSocket URL, default:
 * ws(s)://<api host>/prod), data-open="true" (open at load). data-lang: "zh", "en" or "auto"
 * (the default: the page's <html lang>, then the browser's languages). data-ping-interval
 * (seconds between pings, default 30) and data-reply-timeout (seconds the server has to answer
 * a ping, acknowledge a message or complete the handshake, default 10): a connection that
 * misses the deadline is dropped and replaced, even when the browser never saw it close.
 *
 * Plain JavaScript, no build step; the UI lives in a shadow root so host styles never leak in.
 * Assistant and agent messages are rendered as safe Markdown (the renderer below is a copy of
 * web/markdown.js); visitor messages are plain text.
 * Protocol: docs/protocol.md and docs/console.md.
 */
(function () {
  "use strict";
  var script = document.currentScript || document.querySelector("script[data-widget-key]");
  if (!script || window.__kefuWidget) return;
  var ds = script.dataset;
  var widgetKey = ds.widgetKey;
  if (!widgetKey) { console.warn("kefu: data-widget-key is required"); return; }
  var api = (ds.api || new URL(script.src, location.href).origin).replace(/\/$/, "");
  var wsUrl = ds.ws || api.replace(/^http/, "ws") + "/prod";
  var lang = pickLang(ds.lang);
  // "zh" or "en" as asked; "auto" (or nothing): the page's own language when it is one of them,
  // else the first of the browser's languages that is, else English.
  function pickLang(asked) {
    asked = (asked || "auto").toLowerCase();
    if (asked === "zh" || asked === "en") return asked;
    var wanted = [document.documentElement.getAttribute("lang") || ""]
      .concat(navigator.languages || [], [navigator.language || ""]);
    for (var i = 0; i < wanted.length; i++) {
      var code = String(wanted[i]).toLowerCase().split(/[-_]/)[0];
      if (code === "zh" || code === "en") return code;
    }
    return "en";
  }
  var position = ds.position === "left" ? "left" : "right";

  var T = {
    zh: {
      title: "在线客服", online: "在线", connecting: "连接中…", reconnecting: "正在重新连接…", lost: "网络连接中断，恢复后消息会自动发送",
      placeholder: "输入消息…", send: "发送", human: "转人工", end: "结束对话", typing: "正在输入…",
      queued: "正在为您转接人工客服，您当前排在第 {n} 位", queuedNoPos: "正在为您转接人工客服…",
      noAgents: "当前没有客服在线，您可以留言，我们会尽快联系您。", leaveMessage: "留言",
      joined: "客服 {name} 已接入", back: "智能助手继续为您服务", closed: "对话已结束",
      rateTitle: "请为本次服务评分", comment: "还有什么想告诉我们的？（可选）", submit: "提交",
      thanks: "感谢您的评价！", newChat: "开始新对话", cut: "回复中断", failed: "发送失败",
      name: "称呼", contact: "手机或邮箱", message: "留言内容", offlineSaved: "留言已提交，我们会尽快联系您。",
      cancel: "取消", open: "打开客服对话", close: "关闭", busy: "咨询人数较多，请稍候再试",
      greeting: "您好！有什么可以帮您？", agent: "客服", bot: "智能助手", you: "我",
      sending: "发送中", delivered: "已送达", retry: "重试", endAsk: "结束本次对话？结束后可以为服务评分。",
      endYes: "结束对话", live: "人工客服 · 已接入", agentTyping: "{name} 正在输入", botTyping: "智能助手正在输入", yesterday: "昨天",
      helpful: "有帮助", notHelpful: "没帮助",
      closedNow: "现在是非工作时间，客服将于 {when} 回来。智能助手仍可为您解答，您也可以留言。",
      closedNoTime: "现在是非工作时间。智能助手仍可为您解答，您也可以留言。",
      queuedClosed: "已为您排队：客服将于 {when} 回来，您的消息都会保留。", queuedClosedNoTime: "已为您排队：客服回来后会尽快回复，您的消息都会保留。", queuedLater: "已排队，等待客服上班",
      whyDown: "哪里不满意？（可选）", why_wrong: "答案不对", why_missed: "没回答我的问题", why_unclear: "看不懂", why_outdated: "信息过时",
      whyMore: "补充说明（可选）", whySend: "提交", whySkip: "跳过", whyThanks: "感谢反馈，我们会改进。",
      attach: "发送图片", image: "[图片]", uploading: "上传中 {p}%", closeImage: "关闭图片",
      imageType: "无法读取这张图片，请选择 JPG、PNG 或 WebP 图片", imageTooBig: "图片太大（最大 {mb} MB）",
      imageFailed: "图片发送失败", tooManyImages: "发送的图片太多，请稍后再试", imagesOff: "暂不支持发送图片"
    },
    en: {
      title: "Customer service", online: "Online", connecting: "Connecting…", reconnecting: "Reconnecting…", lost: "Connection lost. Your messages go out once it is back",
      placeholder: "Type a message…", send: "Send", human: "Talk to a human", end: "End chat", typing: "Typing…",
      queued: "Connecting you to an agent. You are number {n} in the queue", queuedNoPos: "Connecting you to an agent…",
      noAgents: "No agent is online right now. Leave a message and we will get back to you.", leaveMessage: "Leave a message",
      joined: "{name} joined the chat", back: "The assistant is back", closed: "The conversation has ended",
      rateTitle: "How did we do?", comment: "Anything else to tell us? (optional)", submit: "Submit",
      thanks: "Thank you for your feedback!", newChat: "Start a new chat", cut: "reply cut off", failed: "Not sent",
      name: "Name", contact: "Phone or e-mail", message: "Your message", offlineSaved: "Message sent. We will get back to you soon.",
      cancel: "Cancel", open: "Open the chat", close: "Close", busy: "We are busy, please try again shortly",
      greeting: "Hi! How can I help?", agent: "Agent", bot: "Assistant", you: "Me",
      sending: "Sending", delivered: "Delivered", retry: "Retry", endAsk: "End this chat? You can rate it afterwards.",
      endYes: "End chat", live: "Live agent · joined", agentTyping: "{name} is typing", botTyping: "The assistant is typing", yesterday: "Yesterday",
      helpful: "Helpful", notHelpful: "Not helpful",
      closedNow: "We're closed now — agents are back {when}. The assistant can still help, or leave us a message.",
      closedNoTime: "We're closed now. The assistant can still help, or leave us a message.",
      queuedClosed: "You're in the queue: agents are back {when} and will see all your messages.", queuedClosedNoTime: "You're in the queue: agents will reply once they are back and will see all your messages.", queuedLater: "Queued until agents are back",
      whyDown: "What went wrong? (optional)", why_wrong: "Wrong answer", why_missed: "Didn't answer my question", why_unclear: "Hard to understand", why_outdated: "Out of date",
      whyMore: "Anything to add? (optional)", whySend: "Send", whySkip: "Skip", whyThanks: "Thanks, we'll use this to improve.",
      attach: "Send an image", image: "[Image]", uploading: "Uploading {p}%", closeImage: "Close the image",
      imageType: "This file can't be read as a picture. Pick a JPG, PNG or WebP image", imageTooBig: "The image is too large (max {mb} MB)",
      imageFailed: "The image could not be sent", tooManyImages: "Too many images, please wait a moment", imagesOff: "Images can't be sent here"
    }
  }[lang];
  function t(key, vars) {
    return String(T[key]).replace(/\{(\w+)\}/g, function (_, k) { return vars && vars[k] != null ? vars[k] : ""; });
  }

  // -- persistent state -------------------------------------------------------------------
  var store = (function () { try { localStorage.setItem("kefu:probe", "1"); return localStorage; } catch (e) { return null; } })();
  var ns = "kefu:" + widgetKey + ":";
  function load(key, fallback) { try { var v = store && store.getItem(ns + key); return v ? JSON.parse(v) : fallback; } catch (e) { return fallback; } }
  function save(key, value) { try { if (store) store.setItem(ns + key, JSON.stringify(value)); } catch (e) { /* private mode */ } }

  var outbox = load("outbox", []);          // sent, not yet acknowledged: resent with the same client_msg_id
  var wasOpen = load("open", false);
  var lastSeq = 0, conversationId = null, ws = null, backoff = 500, retryTimer = null, pingTimer = null;
  function seconds(value, fallback, low, high) {
    var n = Number(value);
    return Math.min(high, Math.max(low, isFinite(n) && n > 0 ? n : fallback)) * 1000;
  }
  var PING_MS = seconds(ds.pingInterval, 30, 1, 540);     // under API Gateway's 10 min idle limit
  var DEADLINE_MS = seconds(ds.replyTimeout, 10, 1, 60);
  var pongTimer = null, ackTimers = {}, attempt = 0;
  var offlineSent = false;
  var owner = "bot", awaitingReply = false, typingTimer = null, unread = 0, rated = false, closedView = false;
  var widgetConf = {};
  var items = {};                           // key -> element
  var texts = {};                           // key -> the message's text (its Markdown source)
  var dirty = {}, frame = 0;                // bubbles to paint on the next animation frame

  // -- DOM ---------------------------------------------------------------------------------
  var host = document.createElement("div");
  host.id = "kefu-widget";
  host.setAttribute("data-kefu", "widget");
  var root = host.attachShadow({ mode: "open" });
  var color = ds.color || "#2f6fed";
  root.innerHTML =
    '<style>' +
    ':host{all:initial}' +
    '*{box-sizing:border-box;font-family:system-ui,-apple-system,"PingFang SC","Microsoft YaHei",sans-serif}' +
    '.launcher{position:fixed;bottom:20px;' + position + ':20px;width:56px;height:56px;border-radius:50%;border:0;background:var(--c);color:#fff;cursor:pointer;box-shadow:0 4px 16px rgba(0,0,0,.25);z-index:2147483000;display:flex;align-items:center;justify-content:center}' +
    '.launcher svg{width:26px;height:26px}' +
    '.badge{position:absolute;top:-2px;right:-2px;min-width:20px;height:20px;border-radius:10px;background:#e5484d;color:#fff;font-size:12px;line-height:20px;text-align:center;padding:0 5px;display:none}' +
    '.panel{position:fixed;bottom:88px;' + position + ':20px;width:370px;max-width:calc(100vw - 24px);height:560px;max-height:calc(100vh - 110px);background:#fff;border-radius:14px;box-shadow:0 8px 32px rgba(0,0,0,.22);display:none;flex-direction:column;overflow:hidden;z-index:2147483000;color:#1f2328;font-size:14px}' +
    '.panel.open{display:flex}' +
    'header{background:var(--c);color:#fff;padding:12px 14px;display:flex;align-items:center;gap:10px}' +
    'header .av{width:34px;height:34px;border-radius:50%;background:rgba(255,255,255,.25);display:flex;align-items:center;justify-content:center;font-weight:600;overflow:hidden;flex:none}' +
    'header .av img{width:100%;height:100%;object-fit:cover}' +
    'header .ttl{flex:1;min-width:0}header .name{font-weight:600;font-size:15px}header .st{font-size:12px;opacity:.9}' +
    'header .name,header .st,.who{white-space:nowrap;overflow:hidden;text-overflow:ellipsis}' +
    'header button{background:rgba(255,255,255,.18);color:#fff;border:0;border-radius:6px;padding:5px 8px;font-size:12px;cursor:pointer;white-space:nowrap}' +
    'header button:hover{background:rgba(255,255,255,.3)}header button[hidden]{display:none}' +
    '.down header .st:before{content:"";display:inline-block;width:7px;height:7px;border-radius:50%;background:#ffd166;margin-right:5px;vertical-align:1px}' +
    '.netbar{display:none;background:#fff1f0;color:#a4262c;font-size:12px;padding:6px 12px;border-bottom:1px solid #f5c2c0}.down .netbar{display:block}' +
    '.banner{background:#fff7e6;color:#8a5300;font-size:12.5px;padding:8px 12px;border-bottom:1px solid #f3e2bd;display:none}' +
    '.banner.show{display:block}.banner button{margin-left:6px;background:var(--c);color:#fff;border:0;border-radius:5px;padding:3px 8px;font-size:12px;cursor:pointer}' +
    '.log{flex:1;overflow-y:auto;padding:14px 12px;background:#f6f7f9}' +
    '.row{display:flex;margin:6px 0}.row.visitor{justify-content:flex-end}' +
    '.b{max-width:80%;padding:8px 12px;border-radius:14px;line-height:1.5;white-space:pre-wrap;word-break:break-word;background:#fff;box-shadow:0 1px 2px rgba(0,0,0,.06)}' +
    '.visitor .b{background:var(--c);color:#fff;border-bottom-right-radius:4px}' +
    '.assistant .b,.agent .b{border-bottom-left-radius:4px}' +
    '.who{font-size:11px;color:#8b949e;margin:0 4px 2px}' +
    '.col{display:flex;flex-direction:column;max-width:80%}.col .b{max-width:100%}' +
    '.pending .b{opacity:.6}.incomplete .b:after{content:" ⚠ ' + T.cut + '";font-size:11px;color:#b45309}' +
    '.meta{font-size:11px;color:#8b949e;margin:2px 4px 0;display:flex;gap:6px;align-items:center}.visitor .meta{justify-content:flex-end}' +
    '.meta .ok{color:#1a7f37}.meta .bad{color:#cf222e}' +
    '.meta button.fb{background:none;border:0;padding:0 2px;cursor:pointer;font-size:13px;opacity:.45}.meta button.fb.on{opacity:1}' +
    '.meta button.retry{background:none;border:0;padding:0;color:#cf222e;text-decoration:underline;cursor:pointer;font-size:11px}' +
    '.failed .b{opacity:1;outline:1px solid #cf222e}' +
    '.why{margin:4px 0 0;background:#fff;border:1px solid #eaecef;border-radius:10px;padding:8px;font-size:12px}.why h5{margin:0 0 6px;font-size:12px;font-weight:600}' +
    '.why .chips{display:flex;flex-wrap:wrap;gap:5px;margin-bottom:6px}.why .chips button{border:1px solid #d0d7de;background:#fff;border-radius:12px;padding:2px 9px;font-size:12px;cursor:pointer}' +
    '.why .chips button.on{background:var(--c);border-color:var(--c);color:#fff}.why textarea{width:100%;border:1px solid #d0d7de;border-radius:6px;padding:5px 7px;font-size:12px;resize:none}' +
    '.why .actions{display:flex;gap:6px;justify-content:flex-end;margin-top:4px}.why .actions button{border:0;border-radius:6px;padding:3px 10px;font-size:12px;cursor:pointer;background:#eaecef}.why .actions button.w-send{background:var(--c);color:#fff}' +
    '.sys{text-align:center;color:#6e7781;font-size:12px;margin:10px 0}' +
    '.typing{font-size:12px;color:#6e7781;padding:2px 14px 6px;background:#f6f7f9;min-height:26px;display:flex;align-items:center;gap:8px}' +
    '.typing>*{visibility:hidden}.typing.show>*{visibility:visible}' +
    '.dots{display:inline-flex;gap:4px;background:#fff;border-radius:12px;padding:7px 10px;box-shadow:0 1px 2px rgba(0,0,0,.06)}' +
    '.dots i{width:6px;height:6px;border-radius:50%;background:#8b949e;animation:kefu-dot 1.2s infinite ease-in-out}' +
    '.dots i:nth-child(2){animation-delay:.15s}.dots i:nth-child(3){animation-delay:.3s}' +
    '@keyframes kefu-dot{0%,60%,100%{transform:translateY(0);opacity:.45}30%{transform:translateY(-4px);opacity:1}}' +
    '@media (prefers-reduced-motion:reduce){.dots i{animation:none}}' +
    '.tools{display:flex;justify-content:flex-end;padding:0 10px 8px;background:#fff}' +
    '.tools button{background:none;border:0;color:#6e7781;font-size:12px;cursor:pointer;padding:2px 4px}.tools button:hover{color:#cf222e}.tools button[hidden]{display:none}' +
    'form.compose{display:flex;gap:8px;padding:10px;border-top:1px solid #eaecef;background:#fff}' +
    'form.compose textarea{flex:1;resize:none;height:40px;padding:9px 10px;border:1px solid #d0d7de;border-radius:8px;font-size:14px;outline:none}' +
    'form.compose textarea:focus{border-color:var(--c)}' +
    'form.compose button.attach{background:none;color:#6e7781;padding:0 4px;display:flex;align-items:center}form.compose button.attach:hover{color:var(--c)}form.compose button.attach[hidden]{display:none}' +
    'form.compose button.attach svg{width:22px;height:22px}' +
    '.pic{display:block;max-width:220px;max-height:220px;border-radius:12px;cursor:zoom-in;background:#eaecef;object-fit:cover;margin-bottom:3px}.visitor .pic{margin-left:auto}' +
    '.b.empty{display:none}.failed .pic{outline:1px solid #cf222e}.pending .pic{opacity:.7}' +
    '.viewer{position:absolute;inset:0;background:rgba(0,0,0,.88);display:none;align-items:center;justify-content:center;z-index:5;cursor:zoom-out}.viewer.show{display:flex}' +
    '.viewer img{max-width:100%;max-height:100%;object-fit:contain}.viewer button{position:absolute;top:10px;right:10px;background:rgba(255,255,255,.2);color:#fff;border:0;border-radius:6px;padding:5px 9px;cursor:pointer}' +
    '.panel.drop .log{outline:2px dashed var(--c);outline-offset:-6px}' +
    'form.compose button,.card button.primary{background:var(--c);color:#fff;border:0;border-radius:8px;padding:0 14px;font-size:14px;cursor:pointer}' +
    '.card{background:#fff;border-top:1px solid #eaecef;padding:12px;display:none}.card.show{display:block}' +
    '.card h4{margin:0 0 8px;font-size:14px}.stars{display:flex;gap:6px;margin-bottom:8px}' +
    '.stars button{font-size:24px;background:none;border:0;cursor:pointer;color:#d0d7de;padding:0}.stars button.on{color:#f5a623}' +
    '.card textarea,.card input{width:100%;border:1px solid #d0d7de;border-radius:8px;padding:7px 9px;font-size:13px;margin-bottom:8px}' +
    '.card .actions{display:flex;gap:8px;justify-content:flex-end}.card button{height:32px}' +
    '.card button.ghost{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:0 12px;cursor:pointer}' +
    '.done{color:#1a7f37;font-size:13px}' +
    '.b.md{white-space:normal}.b.md p{margin:0 0 .5em}.b.md>:last-child,.b.md li>:last-child{margin-bottom:0}' +
    '.b.md ul,.b.md ol{margin:.2em 0 .5em;padding-left:1.4em}.b.md li{margin:.15em 0}' +
    '.b.md code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.9em;background:rgba(127,127,127,.14);border-radius:4px;padding:0 .25em}' +
    '.b.md pre{margin:.3em 0 .5em;padding:.5em .6em;background:rgba(127,127,127,.12);border-radius:6px;overflow-x:auto;white-space:pre}' +
    '.b.md pre code{background:none;padding:0}.b.md a{color:var(--c);text-decoration:underline}' +
    '.b.md hr{border:0;border-top:1px solid #d0d7de;margin:.5em 0}' +
    // Phones: the panel takes the whole screen (the launcher hides behind it), clear of notches.
    '@media (max-width:480px){' +
    '.launcher{bottom:calc(14px + env(safe-area-inset-bottom));' + position + ':calc(14px + env(safe-area-inset-' + position + '));width:50px;height:50px}' +
    '.panel{top:0;bottom:0;left:0;right:0;width:100%;max-width:none;height:100%;max-height:none;border-radius:0}' +
    '.panel.open~.launcher{display:none}' +
    'header{padding-top:calc(12px + env(safe-area-inset-top));padding-left:calc(14px + env(safe-area-inset-left));padding-right:calc(14px + env(safe-area-inset-right))}' +
    '.tools{padding-bottom:calc(8px + env(safe-area-inset-bottom))}' +
    'form.compose textarea{font-size:16px}' +
    '}' +
    '</style>' +
    '<section class="panel" role="dialog" aria-label="' + T.title + '">' +
    '  <header><div class="av"></div><div class="ttl"><div class="name"></div><div class="st"></div></div>' +
    '    <button type="button" class="human">' + T.human + '</button><button type="button" class="x" aria-label="' + T.close + '">✕</button></header>' +
    '  <div class="netbar" role="status">' + T.lost + '</div>' +
    '  <div class="banner"></div>' +
    '  <div class="log" aria-live="polite"></div>' +
    '  <div class="typing" aria-hidden="true"><span class="dots"><i></i><i></i><i></i></span><span class="tw"></span></div>' +
    '  <div class="card confirm"><h4>' + T.endAsk + '</h4><div class="actions"><button type="button" class="ghost c-cancel">' + T.cancel + '</button><button type="button" class="primary end-yes">' + T.endYes + '</button></div></div>' +
    '  <div class="card offline"><h4>' + T.leaveMessage + '</h4><input class="o-name" placeholder="' + T.name + '"><input class="o-contact" placeholder="' + T.contact + '"><textarea class="o-text" rows="3" placeholder="' + T.message + '"></textarea><div class="actions"><button type="button" class="ghost o-cancel">' + T.cancel + '</button><button type="button" class="primary o-send">' + T.submit + '</button></div></div>' +
    '  <div class="card rate"><h4>' + T.rateTitle + '</h4><div class="stars"></div><textarea class="r-comment" rows="2" placeholder="' + T.comment + '"></textarea><div class="actions"><button type="button" class="ghost r-new">' + T.newChat + '</button><button type="button" class="primary r-send">' + T.submit + '</button></div></div>' +
    '  <form class="compose"><button type="button" class="attach" title="' + T.attach + '" aria-label="' + T.attach + '"><svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round" stroke-linejoin="round"><rect x="3" y="4" width="18" height="16" rx="2.5"/><circle cx="9" cy="10" r="1.8"/><path d="M21 16l-5.5-5.5L5 20"/></svg></button><input type="file" class="pick" accept="image/*" hidden><textarea placeholder="' + T.placeholder + '" aria-label="' + T.placeholder + '"></textarea><button type="submit">' + T.send + '</button></form>' +
    '  <div class="tools"><button type="button" class="end">' + T.end + '</button></div>' +
    '  <div class="viewer" role="dialog" aria-label="' + T.image + '"><img alt=""><button type="button" aria-label="' + T.closeImage + '">✕</button></div>' +
    '</section>' +
    '<button class="launcher" part="launcher" aria-label="' + T.open + '"><svg viewBox="0 0 24 24" fill="currentColor"><path d="M12 3C6.5 3 2 6.8 2 11.5c0 2.4 1.2 4.6 3.1 6.1L4 21l4.1-1.9c1.2.4 2.5.6 3.9.6 5.5 0 10-3.8 10-8.5S17.5 3 12 3z"/></svg><span class="badge"></span></button>' +
    '';
  function $(sel) { return root.querySelector(sel); }
  var panel = $(".panel"), log = $(".log"), statusEl = $(".st"), banner = $(".banner"), typingEl = $(".typing");
  var input = $("form.compose textarea"), badge = $(".badge"), humanBtn = $("button.human"), endBtn = $("button.end");
  var offlineCard = $(".card.offline"), rateCard = $(".card.rate"), confirmCard = $(".card.confirm"), stars = $(".stars");
  var score = 0;
  for (var s = 1; s <= 5; s++) {
    var star = document.createElement("button");
    star.type = "button"; star.textContent = "★"; star.dataset.score = String(s);
    star.setAttribute("aria-label", s + "/5");
    stars.appendChild(star);
  }

  var agentName = null;                     // the human who joined, shown in the header
  function applyTheme() {
    var c = ds.color || widgetConf.color || color;
    panel.style.setProperty("--c", c); $(".launcher").style.setProperty("--c", c);
    renderHeader();
  }
  // The header names whoever answers: the company (title, avatar) or the agent who joined
  // (their name and initial). Names are text, never markup.
  function renderHeader() {
    var av = $(".av");
    av.textContent = "";
    av.title = "";
    if (agentName) {
      $(".name").textContent = agentName;
      av.textContent = Array.from(agentName)[0].toUpperCase();
      av.title = agentName;
      return;
    }
    $(".name").textContent = ds.title || T.title;
    var avatar = ds.avatar || widgetConf.avatar_url;
    if (avatar) { var img = document.createElement("img"); img.src = avatar; img.alt = ""; av.appendChild(img); }
    else av.textContent = lang === "zh" ? "客" : "K";
  }
  applyTheme();

  // -- rendering ---------------------------------------------------------------------------
/* markdown.js begin */
/*!
 * Kefu Markdown: renders the safe subset of Markdown that assistants write (bold, italics,
 * inline code, code blocks, paragraphs and line breaks, bulleted and numbered lists, headings
 * shown as bold lines, rules, links) as DOM nodes built with createElement/createTextNode.
 * It never parses HTML: "<b>" or "<script>" in the text stays text. Links: http, https and
 * mailto only, opened with target=_blank rel="noopener noreferrer"; any other scheme is text.
 * An emphasis or link that is not closed yet (a reply still streaming) stays text.
 *
 * web/markdown.js is the source (the agent console loads it); web/widget.js carries the same
 * code between "markdown.js begin/end" markers so the widget stays one file (a unit test checks
 * that both copies are identical). Design: docs/design-notes.md.
 */
var KefuMarkdown = (function () {
  "use strict";
  var MAX_DEPTH = 6;                                  // nested emphasis/links deeper than this: text
  var MAX_DEST = 2048;                                // longest link destination looked at
  var WORD = /[\p{L}\p{N}]/u;
  var SPACE = /\s/;
  var ESCAPABLE = /[!-\/:-@\[-`{-~]/;                 // ASCII punctuation: "\*" is a literal "*"
  var BARE_URL = /https?:\/\/[A-Za-z0-9\-._~:\/?#\[\]@!$&'()*+,;=%]+/y;
  var FENCE = /^ {0,3}(`{3,}|~{3,})/;
  var FENCE_END = /^ {0,3}(`{3,}|~{3,})[ \t]*$/;
  var HEADING = /^ {0,3}#{1,6}[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$/;
  var RULE = /^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
  var ITEM = /^([ \t]*)([-*+]|\d{1,9}[.)])[ \t]+(.*)$/;

  function safeHref(raw) {
    var url = raw.trim();
    if (url.charAt(0) === "<" && url.charAt(url.length - 1) === ">") url = url.slice(1, -1);
    if (!/^(https?:\/\/|mailto:)/i.test(url)) return null;
    try { url = new URL(url); } catch (e) { return null; }
    return /^(https?|mailto):$/.test(url.protocol) ? url.href : null;
  }

  function count(s, ch) { return s.split(ch).length - 1; }
  function trimUrl(url) {
    url = url.replace(/[.,;:!?'"*_~]+$/, "");
    var last = url.slice(-1);
    if ((last === ")" && count(url, "(") < count(url, ")")) ||
        (last === "]" && count(url, "[") < count(url, "]"))) url = url.slice(0, -1);
    return url;
  }

  function runLength(s, i, ch) { var k = i; while (s.charAt(k) === ch) k++; return k - i; }

  // The position of the delimiter (ch repeated len times) closing an emphasis opened before
  // `from`, or -1. A closer follows a non-space character and is not escaped; "_" closers are
  // not followed by a letter or digit (snake_case stays text).
  function findCloser(s, from, ch, len) {
    for (var k = from; k < s.length; k++) {
      if (s.charAt(k) !== ch) continue;
      var run = runLength(s, k, ch);
      var prev = s.charAt(k - 1);
      if (k > from && !SPACE.test(prev) && prev !== "\\" && run !== (len === 1 ? 2 : 1)) {
        var at = len === 2 ? k + run - 2 : (run === 1 ? k : k + run - 1);
        if (ch !== "_" || !WORD.test(s.charAt(at + len))) return at;
      }
      k += run - 1;
    }
    return -1;
  }

  // Appends the inline content of `s` to `parent`. `none` remembers searches that failed, so
  // that unclosed delimiters cost one scan each (no quadratic time on hostile text).
  function inline(doc, s, parent, depth, inLink) {
    var buf = "", i = 0, none = {};
    function flush() {
      var parts = buf.split("\n");
      for (var k = 0; k < parts.length; k++) {
        if (k) parent.appendChild(doc.createElement("br"));
        if (parts[k]) parent.appendChild(doc.createTextNode(parts[k]));
      }
      buf = "";
    }
    function node(tag, inner) {
      flush();
      var e = doc.createElement(tag);
      if (inner != null) inline(doc, inner, e, depth + 1, inLink || tag === "a");
      parent.appendChild(e);
      return e;
    }
    while (i < s.length) {
      var c = s.charAt(i), end, run;
      if (c === "\\" && ESCAPABLE.test(s.charAt(i + 1))) { buf += s.charAt(i + 1); i += 2; continue; }
      if (c === "`") {
        run = runLength(s, i, "`");
        end = none["`" + run] ? -1 : s.indexOf(s.substr(i, run), i + run);
        while (end >= 0 && runLength(s, end, "`") !== run) end = s.indexOf(s.substr(i, run), end + runLength(s, end, "`"));
        if (end < 0) { none["`" + run] = true; buf += s.substr(i, run); i += run; continue; }
        var code = s.slice(i + run, end);
        if (/^ [\s\S]*[^ ][\s\S]* $/.test(code)) code = code.slice(1, -1);
        node("code").textContent = code;
        i = end + run;
        continue;
      }
      if ((c === "*" || c === "_") && depth < MAX_DEPTH) {
        run = runLength(s, i, c);
        var left = c !== "_" || !WORD.test(s.charAt(i - 1));
        var len = run >= 2 ? 2 : 1;
        for (; len >= 1 && left; len--) {
          var key = c + len;
          if (none[key] || !s.charAt(i + len) || SPACE.test(s.charAt(i + len))) continue;
          end = findCloser(s, i + len, c, len);
          if (end < 0) { none[key] = true; continue; }
          node(len === 2 ? "strong" : "em", s.slice(i + len, end));
          i = end + len;
          break;
        }
        if (len < 1 || !left) { buf += c; i++; }
        continue;
      }
      if (c === "[" && !inLink && depth < MAX_DEPTH && !none["]"]) {
        var close = s.indexOf("]", i + 1);
        if (close < 0) none["]"] = true;
        else if (close > i + 1 && s.charAt(close + 1) === "(") {
          var open = 0, k = close + 2, stop = Math.min(s.length, k + MAX_DEST);
          for (end = -1; k < stop && s.charAt(k) !== "\n"; k++) {
            if (s.charAt(k) === "\\") k++;
            else if (s.charAt(k) === "(") open++;
            else if (s.charAt(k) === ")" && open-- === 0) { end = k; break; }
          }
          if (end > 0) {
            var href = safeHref(s.slice(close + 2, end).trim().split(/\s+/)[0] || "");
            if (href) {
              var a = node("a", s.slice(i + 1, close));
              a.href = href; a.target = "_blank"; a.rel = "noopener noreferrer";
            } else {
              buf += s.slice(i, end + 1);              // not a scheme we link to: shown as text
            }
            i = end + 1;
            continue;
          }
        }
      }
      if (c === "h" && !inLink && !WORD.test(s.charAt(i - 1))) {
        BARE_URL.lastIndex = i;
        var m = BARE_URL.exec(s);
        if (m) {
          var url = m[0], trimmed;
          // Trailing punctuation ends the sentence, not the address; so does an unmatched ")".
          while ((trimmed = trimUrl(url)) !== url) url = trimmed;
          var bare = safeHref(url);
          if (bare && url.length > 8) {
            var link = node("a");
            link.textContent = url; link.href = bare; link.target = "_blank"; link.rel = "noopener noreferrer";
            i += url.length;
            continue;
          }
        }
      }
      buf += c;
      i++;
    }
    flush();
  }

  function indentOf(line) { return line.match(/^[ \t]*/)[0].replace(/\t/g, "    ").length; }

  function render(text, doc) {
    doc = doc || document;
    var frag = doc.createDocumentFragment();
    var lines = String(text == null ? "" : text).replace(/\r\n?/g, "\n").split("\n");
    var para = null, lists = [], fence = null, blank = false;
    function el(tag, parent) { var e = doc.createElement(tag); (parent || frag).appendChild(e); return e; }
    function closePara() { if (para) { inline(doc, para.join("\n"), el("p"), 0, false); para = null; } }
    function flushItem(top) {
      while (top.lines.length && !top.lines[top.lines.length - 1]) top.lines.pop();
      if (top.lines.length) {
        if (top.li.firstChild) top.li.appendChild(doc.createElement("br"));
        inline(doc, top.lines.join("\n"), top.li, 0, false);
      }
      top.lines = [];
    }
    function closeFence() { if (fence) { fence.code.textContent = fence.lines.join("\n"); fence = null; } }
    function closeLists(level) { while (lists.length > level) flushItem(lists.pop()); }
    function openList(parent, indent, ordered, number) {
      var list = el(ordered ? "ol" : "ul", parent);
      if (ordered && number !== 1) list.setAttribute("start", String(number));
      var entry = { indent: indent, ordered: ordered, list: list, li: null, lines: [] };
      lists.push(entry);
      return entry;
    }
    for (var n = 0; n < lines.length; n++) {
      var line = lines[n], m;
      if (fence) {
        m = FENCE_END.exec(line);
        if (m && m[1].charAt(0) === fence.mark.charAt(0) && m[1].length >= fence.mark.length) closeFence();
        else fence.lines.push(line);
        continue;
      }
      if (!line.trim()) { closePara(); blank = true; continue; }
      var indent = indentOf(line), top = lists[lists.length - 1];
      if ((m = FENCE.exec(line))) {
        closePara();
        var inItem = top && indent >= top.indent + 2;
        if (inItem) flushItem(top); else closeLists(0);
        var pre = el("pre", inItem ? top.li : frag);
        fence = { mark: m[1], code: el("code", pre), lines: [] };
        blank = false;
        continue;
      }
      if (RULE.test(line)) { closePara(); closeLists(0); el("hr"); blank = false; continue; }
      if ((m = HEADING.exec(line))) {
        closePara(); closeLists(0);
        inline(doc, m[1], el("strong", el("p")), 0, false);
        blank = false;
        continue;
      }
      if ((m = ITEM.exec(line))) {
        closePara();
        var ordered = /\d/.test(m[2]), number = ordered ? parseInt(m[2], 10) : 1;
        while (lists.length && indent < lists[lists.length - 1].indent) flushItem(lists.pop());
        top = lists[lists.length - 1];
        var entry;
        if (top && indent >= top.indent + 2 && top.li) {
          flushItem(top);
          entry = openList(top.li, indent, ordered, number);
        } else if (top && top.ordered === ordered) {
          flushItem(top);
          entry = top;
        } else {
          var parent = top ? top.list.parentNode : frag;
          if (top) flushItem(lists.pop());
          entry = openList(parent, indent, ordered, number);
        }
        entry.li = el("li", entry.list);
        entry.lines = [m[3]];
        blank = false;
        continue;
      }
      if (top && (!blank || indent >= top.indent + 2)) {
        if (blank) top.lines.push("");
        top.lines.push(line.replace(/^[ \t]+/, ""));
        blank = false;
        continue;
      }
      closeLists(0);
      (para = para || []).push(line.replace(/^[ \t]+/, ""));
      blank = false;
    }
    closeFence();
    closePara();
    closeLists(0);
    return frag;
  }

  return { render: render };
})();
/* markdown.js end */
  function scroll() { log.scrollTop = log.scrollHeight; }
  // -- time and delivery under each bubble ---------------------------------------------------
  function two(n) { return (n < 10 ? "0" : "") + n; }
  function clock(d) {
    var now = new Date(), hm = two(d.getHours()) + ":" + two(d.getMinutes());
    var day = new Date(now.getFullYear(), now.getMonth(), now.getDate()).getTime();
    if (d.getTime() >= day) return hm;
    if (d.getTime() >= day - 86400000) return T.yesterday + " " + hm;
    return (d.getFullYear() === now.getFullYear() ? "" : d.getFullYear() + "-") + two(d.getMonth() + 1) + "-" + two(d.getDate()) + " " + hm;
  }
  function stamp(el, d) {
    if (isNaN(d.getTime())) d = new Date();
    var time = el.querySelector(".meta time");
    el.dataset.at = d.toISOString();
    time.dateTime = el.dataset.at;
    time.textContent = clock(d);
    time.title = d.toLocaleString();
  }
  // A visitor message is sending (in the outbox), delivered (acknowledged: stored) or failed
  // (not acknowledged in time: the visitor may retry; it stays in the outbox meanwhile).
  function delivery(el, state) {
    var meta = el.querySelector(".meta"), mark = meta.querySelector(".dl");
    if (!mark) { mark = document.createElement("span"); meta.appendChild(mark); }
    mark.textContent = "";
    if (/\bfailed\b/.test(state)) {
      mark.className = "dl bad";
      mark.appendChild(document.createTextNode(T.failed + " · "));
      var again = document.createElement("button");
      again.type = "button"; again.className = "retry"; again.textContent = T.retry;
      mark.appendChild(again);
    } else if (/\bpending\b/.test(state)) {
      mark.className = "dl"; mark.textContent = T.sending + "…";
    } else {
      mark.className = "dl ok"; mark.textContent = "✓ " + T.delivered;
    }
  }
  // When a message was written, for one still in the outbox: its id carries the time.
  function idTime(id) { var ms = parseInt(String(id).split("-")[1], 36); return ms > 1e12 ? new Date(ms) : new Date(); }
  function setStatus(text) { statusEl.textContent = text; }
  function bubble(key, role, text, opts) {
    opts = opts || {};
    var el = items[key];
    if (!el) {
      el = document.createElement("div");
      var col = document.createElement("div"); col.className = "col";
      if (role !== "visitor") { var who = document.createElement("div"); who.className = "who"; col.appendChild(who); }
      var b = document.createElement("div"); b.className = "b"; col.appendChild(b);
      var meta = document.createElement("div"); meta.className = "meta";
      var time = document.createElement("time"); meta.appendChild(time);
      col.appendChild(meta);
      el.appendChild(col);
      log.appendChild(el);
      items[key] = el;
      if (!panel.classList.contains("open") && role !== "visitor" && !opts.replay) { unread++; renderBadge(); }
    }
    if (opts.at || !el.dataset.at) stamp(el, opts.at ? new Date(opts.at) : new Date());
    el.className = "row " + role + (opts.extra ? " " + opts.extra : "");
    el.dataset.role = role;
    if (role === "visitor") delivery(el, opts.extra || "");
    if (opts.image) picture(el, opts.image);
    var whoEl = el.querySelector(".who");
    if (whoEl) whoEl.textContent = role === "agent" ? (opts.name || T.agent) : T.bot;
    texts[key] = text;
    if (opts.defer) {
      // Streaming: paint once per animation frame from the whole text so far.
      dirty[key] = true;
      if (!frame) frame = requestAnimationFrame(paintDirty);
    } else {
      delete dirty[key];
      paint(key);
      scroll();
    }
    return el;
  }
  // 👍/👎 under a bot reply: the server keeps one rating per reply; clicking the other changes it.
  function rateable(el, seq) {
    var meta = el.querySelector(".meta");
    if (!meta || meta.querySelector("button.fb")) return;
    [["up", "👍", T.helpful], ["down", "👎", T.notHelpful]].forEach(function (r) {
      var b = document.createElement("button");
      b.type = "button"; b.className = "fb"; b.dataset.rating = r[0]; b.textContent = r[1];
      b.title = r[2]; b.setAttribute("aria-label", r[2]);
      b.addEventListener("click", function () {
        send({ action: "feedback", seq: seq, rating: r[0] });
        var open = el.querySelector(".why");
        if (r[0] === "down" && !open) askWhy(el, seq); else if (r[0] === "up" && open) open.remove();
      });
      meta.appendChild(b);
    });
  }
  // After 👎: a few reasons to tick and a line of text (optional; sent as the rating's reason,
  // at most 500 characters as the server allows).
  function askWhy(el, seq) {
    var box = document.createElement("div"); box.className = "why";
    var title = document.createElement("h5"); title.textContent = T.whyDown; box.appendChild(title);
    var chips = document.createElement("div"); chips.className = "chips"; box.appendChild(chips);
    ["wrong", "missed", "unclear", "outdated"].forEach(function (k) {
      var c = document.createElement("button"); c.type = "button"; c.dataset.reason = k; c.textContent = T["why_" + k];
      c.addEventListener("click", function () { c.classList.toggle("on"); });
      chips.appendChild(c);
    });
    var more = document.createElement("textarea"); more.rows = 2; more.maxLength = 300; more.placeholder = T.whyMore;
    box.appendChild(more);
    var actions = document.createElement("div"); actions.className = "actions";
    var skip = document.createElement("button"); skip.type = "button"; skip.className = "w-skip"; skip.textContent = T.whySkip;
    var go = document.createElement("button"); go.type = "button"; go.className = "w-send"; go.textContent = T.whySend;
    skip.addEventListener("click", function () { box.remove(); });
    go.addEventListener("click", function () {
      var picked = Array.prototype.map.call(chips.querySelectorAll("button.on"), function (c) { return c.textContent; });
      var text = more.value.trim(), reason = head(picked.join("; ") + (picked.length && text ? " — " : "") + text, 500);
      if (reason) send({ action: "feedback", seq: seq, rating: "down", reason: reason });
      box.textContent = ""; box.appendChild(document.createTextNode(T.whyThanks));
      setTimeout(function () { box.remove(); }, 2500);
    });
    actions.appendChild(skip); actions.appendChild(go); box.appendChild(actions);
    el.querySelector(".col").appendChild(box);
    scroll();
  }
  function paint(key) {
    var el = items[key], b = el && el.querySelector(".b");
    if (!b) return;
    if (el.dataset.role === "visitor") { b.className = texts[key] ? "b" : "b empty"; b.textContent = texts[key]; return; }
    b.className = texts[key] || !el.querySelector(".pic") ? "b md" : "b md empty";
    b.textContent = "";
    b.appendChild(KefuMarkdown.render(texts[key]));
  }
  // -- images: a thumbnail in the bubble, the whole picture in a viewer over the panel ------
  var IMAGE_SIDE = 2048, THUMB = 220, uploads = {};   // client_msg_id -> {blob, type} until acknowledged
  function imagesOn() { return !(widgetConf.images && widgetConf.images.enabled === false); }
  function maxImageBytes() { return (widgetConf.images && widgetConf.images.max_bytes) || 5242880; }
  function imageUrl(url) {
    try { var u = new URL(url, api + "/"); return /^(https?|blob):$/.test(u.protocol) ? u.href : null; } catch (e) { return null; }
  }
  function picture(el, image) {
    var col = el.querySelector(".col"), img = col.querySelector("img.pic"), url = imageUrl(image.url);
    if (!url) return;
    if (!img) {
      img = document.createElement("img"); img.className = "pic"; img.alt = T.image; img.loading = "lazy";
      col.insertBefore(img, col.querySelector(".b"));
    }
    if (image.width && image.height) {
      var k = Math.min(1, THUMB / image.width, THUMB / image.height);
      img.width = Math.max(1, Math.round(image.width * k)); img.height = Math.max(1, Math.round(image.height * k));
    }
    if (!/^blob:/.test(img.getAttribute("src") || "")) img.src = url;   // the sender keeps its own copy
  }
  var viewer = null;
  function view(src) { viewer.querySelector("img").src = src; viewer.classList.add("show"); viewer.querySelector("button").focus(); }
  // The picture is drawn again on a canvas at most IMAGE_SIDE a side: what leaves the browser
  // is pixels only (no EXIF, GPS or camera data), and small enough to upload on a phone.
  function reencode(file) {
    return createImageBitmap(file).then(function (bmp) {
      var k = Math.min(1, IMAGE_SIDE / Math.max(bmp.width, bmp.height));
      var w = Math.max(1, Math.round(bmp.width * k)), h = Math.max(1, Math.round(bmp.height * k));
      var canvas = document.createElement("canvas"); canvas.width = w; canvas.height = h;
      var ctx = canvas.getContext("2d"), png = file.type === "image/png";
      if (!png) { ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, w, h); }
      ctx.drawImage(bmp, 0, 0, w, h);
      if (bmp.close) bmp.close();
      function encode(type) {
        return new Promise(function (ok) { canvas.toBlob(function (blob) { ok({ blob: blob, type: type, width: w, height: h }); }, type, 0.85); });
      }
      return encode(png ? "image/png" : "image/jpeg").then(function (r) {
        return r.blob && r.blob.size > maxImageBytes() && png ? encode("image/jpeg") : r;   // a huge screenshot
      });
    });
  }
  function imageProblem(text) { notice("img:" + Date.now(), text); }
  function sendImage(file) {
    if (!file) return;
    if (!imagesOn()) { imageProblem(T.imagesOff); return; }
    if (!/^image\//.test(file.type)) { imageProblem(T.imageType); return; }
    reencode(file).then(function (r) {
      if (!r.blob) throw new Error("encode");
      if (r.blob.size > maxImageBytes()) { imageProblem(t("imageTooBig", { mb: Math.floor(maxImageBytes() / 1048576) })); return; }
      var id = newId();
      uploads[id] = { blob: r.blob, type: r.type };
      bubble("c:" + id, "visitor", "", { extra: "pending", image: { url: URL.createObjectURL(r.blob), width: r.width, height: r.height } });
      askUpload(id);
    }).catch(function () { imageProblem(T.imageType); });
  }
  function uploadState(id, text, failed) {
    var el = items["c:" + id]; if (!el) return;
    el.classList.toggle("failed", !!failed); el.classList.toggle("pending", !failed);
    var mark = el.querySelector(".meta .dl");
    mark.className = failed ? "dl bad" : "dl"; mark.textContent = text;
    if (failed && uploads[id]) {
      var again = document.createElement("button");
      again.type = "button"; again.className = "reup"; again.textContent = T.retry; again.dataset.id = id;
      mark.appendChild(document.createTextNode(" · ")); mark.appendChild(again);
    }
  }
  function askUpload(id) {
    var u = uploads[id];
    uploadState(id, t("uploading", { p: 0 }));
    if (!send({ action: "upload", client_msg_id: id, content_type: u.type, size: u.blob.size })) uploadState(id, T.imageFailed, true);
  }
  // The form from the server (an S3 presigned POST, or the gateway's own): its fields, then the file.
  function postImage(f) {
    var id = f.client_msg_id, u = uploads[id], target = imageUrl(f.url);
    if (!u || !target) return;
    var form = new FormData();
    Object.keys(f.fields || {}).forEach(function (k) { form.append(k, f.fields[k]); });
    form.append("file", u.blob, u.type === "image/png" ? "image.png" : "image.jpg");
    var xhr = new XMLHttpRequest();
    xhr.open("POST", target);
    xhr.upload.onprogress = function (e) { if (e.lengthComputable) uploadState(id, t("uploading", { p: Math.round(99 * e.loaded / e.total) })); };
    xhr.onload = function () {
      if (xhr.status < 200 || xhr.status > 299) { uploadState(id, xhr.status === 413 ? t("imageTooBig", { mb: Math.floor(maxImageBytes() / 1048576) }) : T.imageFailed, true); return; }
      var frame = { action: "message", client_msg_id: id, text: "", image: f.upload_id };
      outbox.push(frame); save("outbox", outbox);
      markSending(id); transmit(frame);
    };
    xhr.onerror = function () { uploadState(id, T.imageFailed, true); };
    xhr.send(form);
  }
  function imageError(code) {
    if (code === "image_too_large" || code === "image_dimensions") return t("imageTooBig", { mb: Math.floor(maxImageBytes() / 1048576) });
    if (code === "image_type" || code === "image_corrupt") return T.imageType;
    if (code === "too_many_images") return T.tooManyImages;
    if (code === "images_unavailable") return T.imagesOff;
    return T.imageFailed;
  }
  function paintDirty() {
    frame = 0;
    var keys = Object.keys(dirty);
    dirty = {};
    keys.forEach(paint);
    if (keys.length) scroll();
  }
  // The first n characters (code points, as the server counts them) of s.
  function head(s, n) { var cps = Array.from(s); return cps.length > n ? cps.slice(0, n).join("") : s; }
  function notice(key, text) {
    if (items[key]) { items[key].textContent = text; return; }
    var el = document.createElement("div"); el.className = "sys"; el.textContent = text;
    log.appendChild(el); items[key] = el; scroll();
  }
  function eventText(event, m) {
    if (event === "queued") return m.opens_at !== undefined ? queuedClosedText(m.opens_at) : T.queuedNoPos;
    if (event === "agent_joined") return t("joined", { name: m.agent_name || T.agent });
    if (event === "returned_to_bot") return T.back;
    if (event === "closed") return T.closed;
    return m.text || "";
  }
  function renderBadge() { badge.textContent = String(unread); badge.style.display = unread ? "block" : "none"; }
  // Three animated dots and who is typing: the assistant preparing a reply, or the agent.
  function showTyping(on) {
    typingEl.classList.toggle("show", !!on);
    typingEl.querySelector(".tw").textContent = on === "agent" ? t("agentTyping", { name: agentName || T.agent }) : on ? T.botTyping : "";
    if (typingTimer) clearTimeout(typingTimer);
    if (on === "agent") typingTimer = setTimeout(function () { typingEl.classList.remove("show"); }, 5000);
  }
  function seen(seq) { if (seq > lastSeq) lastSeq = seq; }
  function greet() {
    var g = ds.greeting || (lang === "zh" ? widgetConf.greeting_zh : widgetConf.greeting_en) || T.greeting;
    bubble("greeting", "assistant", g, { replay: true });
  }

  function setOwner(state, frame) {
    frame = frame || {};
    owner = state;
    agentName = state === "agent_joined" ? String(frame.agent_name || T.agent) : null;
    renderHeader();
    if (state !== "bot") { showTyping(false); awaitingReply = false; }
    humanBtn.hidden = state !== "bot";
    endBtn.hidden = state === "closed" || !conversationId;   // nothing to end before a first message
    if (state === "closed") confirmCard.classList.remove("show");
    banner.classList.remove("show", "closed"); banner.textContent = "";
    if (state === "queued" && frame.opens_at !== undefined) {
      // Outside business hours: queued until agents are back.
      banner.textContent = queuedClosedText(frame.opens_at);
      banner.classList.add("show", "closed"); leaveButton();
      setStatus(T.queuedLater);
    } else if (state === "queued") {
      banner.textContent = frame.position ? t("queued", { n: frame.position }) : T.queuedNoPos;
      if (frame.agents_online === false) { banner.textContent = T.noAgents; leaveButton(); }
      banner.classList.add("show");
      setStatus(T.queuedNoPos);
    } else if (state === "agent_joined") {
      setStatus(T.live);
      showTyping(false); awaitingReply = false;
    } else if (state === "closed") {
      setStatus(T.closed); showTyping(false); awaitingReply = false;
      if (!closedView) { closedView = true; rateCard.classList.add("show"); }
    } else {
      setStatus(T.online);
      closedNotice();
    }
    $("form.compose").style.display = state === "closed" ? "none" : "flex";
  }

  // Business hours (widget.hours from the token): outside them the bot still answers; the
  // banner says when agents are back, in the visitor's own time zone with the zone named.
  function opening(iso) {
    var d = new Date(iso), soon = d.getTime() - Date.now() < 6 * 86400000;
    var opts = { weekday: "long", hour: "2-digit", minute: "2-digit", hour12: false, timeZoneName: "short" };
    if (!soon) { opts.month = "long"; opts.day = "numeric"; }
    try { return new Intl.DateTimeFormat(lang === "zh" ? "zh-CN" : "en-GB", opts).format(d); } catch (e) { return d.toLocaleString(); }
  }
  function queuedClosedText(iso) { return iso ? t("queuedClosed", { when: opening(iso) }) : T.queuedClosedNoTime; }
  function leaveButton() {
    if (widgetConf.offline_message_enabled === false || offlineSent || banner.querySelector("button.leave")) return;
    var btn = document.createElement("button"); btn.type = "button"; btn.textContent = T.leaveMessage;
    btn.className = "leave"; btn.onclick = function () { offlineCard.classList.add("show"); $(".o-text").focus(); };
    banner.appendChild(btn);
  }
  var openingTimer = null;
  function closedNotice() {
    var h = widgetConf.hours;
    if (!h || h.open !== false || owner !== "bot" || banner.classList.contains("show")) return;
    banner.textContent = h.next_opening ? t("closedNow", { when: opening(h.next_opening) }) : T.closedNoTime;
    banner.classList.add("show", "closed"); leaveButton();
    // Once the opening passes on this page, the notice goes (a new token says so anyway).
    clearTimeout(openingTimer);
    var wait = h.next_opening ? Date.parse(h.next_opening) - Date.now() : NaN;
    if (wait > 0 && wait < 2147483647) openingTimer = setTimeout(function () {
      h.open = true;
      if (owner === "bot" && banner.classList.contains("closed")) { banner.classList.remove("show", "closed"); banner.textContent = ""; }
    }, wait);
  }

  // -- the connection ----------------------------------------------------------------------
  function send(frame) { if (ws && ws.readyState === 1) { ws.send(JSON.stringify(frame)); return true; } return false; }

  function fetchToken() {
    var body = { widget_key: widgetKey };
    var vid = load("visitor", null);
    if (vid && /^v-[0-9a-f]{32}$/.test(vid)) body.visitor_id = vid;
    if (ds.identity) body.identity = ds.identity;
    return fetch(api + "/v1/visitor-token", {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
      signal: AbortSignal.timeout ? AbortSignal.timeout(2 * DEADLINE_MS) : undefined
    }).then(function (res) {
      if (!res.ok) throw new Error("token " + res.status);
      return res.json();
    }).then(function (data) {
      if (/^v-/.test(data.visitor_id)) save("visitor", data.visitor_id);
      widgetConf = data.widget || {};
      $("button.attach").hidden = !imagesOn();
      applyTheme(); greet();
      if (owner === "bot") { banner.classList.remove("show", "closed"); banner.textContent = ""; closedNotice(); }
      return data.token;
    });
  }

  // Connecting: a token, then the socket. Each attempt has a number; a late answer to an older
  // attempt is ignored, so two attempts never both end up with a socket.
  function connect() {
    clearTimeout(retryTimer);
    var mine = ++attempt;
    setStatus(lastSeq || conversationId ? T.reconnecting : T.connecting);
    fetchToken().then(function (token) {
      if (mine !== attempt) return;
      var sock = new WebSocket(wsUrl + "?token=" + encodeURIComponent(token));
      ws = sock;
      // A handshake that never completes (a stalled network) is given up like a dead socket.
      var opening = setTimeout(function () { if (ws === sock && sock.readyState === 0) dead(); }, DEADLINE_MS);
      sock.onopen = function () {
        clearTimeout(opening);
        backoff = 500;
        panel.classList.remove("down");
        setStatus(T.online);
        sock.send(JSON.stringify({ action: "sync", last_seq: lastSeq }));
        sock.send(JSON.stringify(pageContext()));
        outbox.forEach(function (m) { markSending(m.client_msg_id); transmit(m); });   // same client_msg_id: de-duplicated
        clearInterval(pingTimer);
        pingTimer = setInterval(ping, PING_MS);
      };
      sock.onmessage = function (ev) {
        if (ws !== sock) return;
        try { handle(JSON.parse(ev.data)); } catch (e) { console.warn("kefu:", e); }
      };
      sock.onclose = function () { clearTimeout(opening); if (ws === sock) dead(); };
    }).catch(function () { if (mine === attempt) { setStatus(T.reconnecting); retry(); } });
  }
  // What the agent sees about where the visitor is: this page, where they came from, their
  // language and time zone (the server adds the browser, from the handshake).
  function pageContext() {
    var tz = "";
    try { tz = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { /* old browser */ }
    return {
      action: "context", url: location.href.split("#")[0].slice(0, 2000), title: document.title.slice(0, 300),
      referrer: document.referrer.slice(0, 2000), language: (navigator.language || "").slice(0, 35), time_zone: tz.slice(0, 64)
    };
  }
  function retry() {
    clearTimeout(retryTimer);
    var wait = backoff * (0.75 + Math.random() * 0.5);
    backoff = Math.min(backoff * 2, 15000);
    retryTimer = setTimeout(connect, wait);
  }
  // Liveness: a ping must be answered by a pong within the deadline. A socket that does not
  // answer is dead even if the browser still calls it open (a network that went away without
  // closing it): it is dropped, the header says so, and a new connection is made.
  function ping() {
    if (!ws || ws.readyState !== 1 || pongTimer) return;
    send({ action: "ping" });
    pongTimer = setTimeout(function () { pongTimer = null; dead(); }, DEADLINE_MS);
  }
  // Let go of the socket (and of any attempt under way) without waiting for a close that may
  // never come.
  function drop() {
    var old = ws;
    ws = null;
    attempt++;
    clearInterval(pingTimer); clearTimeout(pongTimer); pongTimer = null;
    if (old) {
      old.onopen = old.onmessage = old.onclose = null;
      try { old.close(); } catch (e) { /* already closing */ }
    }
  }
  function dead() {
    drop();
    panel.classList.add("down");
    setStatus(T.reconnecting);
    showTyping(false);
    retry();
  }
  window.addEventListener("online", function () { if (!ws || ws.readyState > 1) { backoff = 500; connect(); } });
  window.addEventListener("offline", function () { if (ws) dead(); });
  document.addEventListener("visibilitychange", function () { if (!document.hidden) ping(); });

  function handle(f) {
    if (f.type === "history") {
      if (conversationId && f.conversation_id !== conversationId && lastSeq > 0) {
        // A new conversation (the old one was closed): start from its beginning.
        lastSeq = 0; send({ action: "sync", last_seq: 0 }); conversationId = f.conversation_id; return;
      }
      conversationId = f.conversation_id;
      f.messages.forEach(function (m) {
        if (m.role === "system") { notice("s:" + m.seq, eventText(m.event, m)); seen(m.seq); return; }
        var key = m.role === "visitor" && m.client_msg_id ? "c:" + m.client_msg_id : "s:" + m.seq;
        var row = bubble(key, m.role, m.text, { extra: m.status === "complete" ? "" : m.status, name: m.agent_name, replay: true, at: m.at, image: m.image });
        if (m.role === "assistant" && m.status === "complete") rateable(row, m.seq);
        if (m.status !== "streaming") seen(m.seq);
        if (m.role === "visitor") dropFromOutbox(m.client_msg_id);
      });
      // Messages still waiting for their ack come after everything the server has.
      outbox.forEach(function (m) { var p = items["c:" + m.client_msg_id]; if (p) log.appendChild(p); });
      scroll();
    } else if (f.type === "pong") {
      clearTimeout(pongTimer); pongTimer = null;
    } else if (f.type === "ack") {
      if (!conversationId) { conversationId = f.conversation_id; endBtn.hidden = owner === "closed"; }   // the first message started it
      dropFromOutbox(f.client_msg_id);
      delete uploads[f.client_msg_id];
      var el = items["c:" + f.client_msg_id];
      if (el) { el.classList.remove("pending", "failed"); delivery(el, ""); }
      seen(f.seq);
      if (owner === "bot") { awaitingReply = true; showTyping(true); }
    } else if (f.type === "message") {
      if (f.role === "visitor") bubble(f.client_msg_id ? "c:" + f.client_msg_id : "s:" + f.seq, "visitor", f.text, { image: f.image });
      else { bubble("s:" + f.seq, f.role, f.text, { name: f.agent_name, image: f.image }); showTyping(false); }
      seen(f.seq);
    } else if (f.type === "delta") {
      bubble("s:" + f.seq, "assistant", head(texts["s:" + f.seq] || "", f.offset) + f.text, { extra: "streaming", defer: true });
      showTyping(false);
    } else if (f.type === "final") {
      var reply = bubble("s:" + f.seq, "assistant", f.text, { extra: f.status === "incomplete" ? "incomplete" : "" });
      if (f.status === "complete") rateable(reply, f.seq);
      seen(f.seq); awaitingReply = false; showTyping(false);
    } else if (f.type === "state") {
      if (!conversationId && f.conversation_id) conversationId = f.conversation_id;
      if (f.seq) seen(f.seq);
      if (f.seq && !items["s:" + f.seq]) notice("s:" + f.seq, eventText(f.state === "bot" ? "returned_to_bot" : f.state, f));
      setOwner(f.state, f);
    } else if (f.type === "typing") {
      if (f.role === "agent") showTyping("agent");
    } else if (f.type === "csat_saved") {
      rated = true;
      rateCard.querySelector("h4").textContent = T.thanks;
      stars.style.display = "none"; $(".r-comment").style.display = "none"; $(".r-send").style.display = "none";
    } else if (f.type === "feedback_saved") {
      var ratedRow = items["s:" + f.seq];
      if (ratedRow) ratedRow.querySelectorAll("button.fb").forEach(function (b) { b.classList.toggle("on", b.dataset.rating === f.rating); });
    } else if (f.type === "offline_saved") {
      offlineSent = true;   // no second "leave a message" button in this page
      var leave = banner.querySelector("button.leave"); if (leave) leave.remove();
      offlineCard.innerHTML = '<div class="done"></div>';
      offlineCard.querySelector(".done").textContent = T.offlineSaved;
    } else if (f.type === "upload") {
      postImage(f);
    } else if (f.type === "busy") {
      setStatus(T.busy); showTyping(false);
    } else if (f.type === "error") {
      if (f.client_msg_id && (uploads[f.client_msg_id] || /^(image_|images_|too_many_images)/.test(f.code))) {
        dropFromOutbox(f.client_msg_id); uploadState(f.client_msg_id, imageError(f.code), true);
      } else if (f.code === "conversation_closed") setOwner("closed");
      else if (f.code === "not_connected") dead();
      else if (f.retry && f.client_msg_id) setTimeout(function () { resend(f.client_msg_id); }, 1500);
    }
  }
  function dropFromOutbox(id) {
    clearTimeout(ackTimers[id]); delete ackTimers[id];
    var i = outbox.findIndex(function (m) { return m.client_msg_id === id; });
    if (i >= 0) { outbox.splice(i, 1); save("outbox", outbox); }
  }
  function resend(id) { outbox.filter(function (m) { return m.client_msg_id === id; }).forEach(transmit); }
  // Sending a message starts its deadline: not acknowledged in time, it shows "not sent" with a
  // retry button (it stays in the outbox and goes out again on the next connection anyway),
  // and the connection is probed.
  function transmit(m) {
    send(m);
    var id = m.client_msg_id;
    clearTimeout(ackTimers[id]);
    ackTimers[id] = setTimeout(function () {
      delete ackTimers[id];
      if (!outbox.some(function (x) { return x.client_msg_id === id; })) return;
      var el = items["c:" + id];
      if (el) { el.classList.remove("pending"); el.classList.add("failed"); delivery(el, "failed"); }
      ping();
    }, DEADLINE_MS);
  }
  function markSending(id) {
    var el = items["c:" + id];
    if (el) { el.classList.remove("failed"); el.classList.add("pending"); delivery(el, "pending"); }
  }
  // The visitor's "retry": everything unacknowledged goes out now, on a fresh connection when
  // the current one is not open.
  function retryNow() {
    outbox.forEach(function (m) { markSending(m.client_msg_id); });
    if (ws && ws.readyState === 1) { outbox.forEach(transmit); ping(); return; }
    drop();
    outbox.forEach(transmit);   // not open: arms the deadlines; sent again once connected
    backoff = 500; connect();
  }
  log.addEventListener("click", function (e) {
    if (!e.target.closest) return;
    if (e.target.closest("button.retry")) retryNow();
    var reup = e.target.closest("button.reup"); if (reup) askUpload(reup.dataset.id);
    var pic = e.target.closest("img.pic"); if (pic) view(pic.src);
  });

  // -- actions -----------------------------------------------------------------------------
  function newId() { return "c-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 10); }
  $("form.compose").addEventListener("submit", function (e) {
    e.preventDefault();
    var text = input.value.trim();
    if (!text) return;
    var frame = { action: "message", client_msg_id: newId(), text: text };
    outbox.push(frame); save("outbox", outbox);
    bubble("c:" + frame.client_msg_id, "visitor", text, { extra: "pending" });
    transmit(frame);
    input.value = "";
  });
  input.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); $("form.compose").requestSubmit(); }
  });
  var lastTyping = 0;
  input.addEventListener("input", function () {
    if (owner === "agent_joined" && Date.now() - lastTyping > 2000) { lastTyping = Date.now(); send({ action: "typing" }); }
  });
  humanBtn.addEventListener("click", function () { send({ action: "handoff" }); });
  // Images: the button, a pasted picture, or one dropped on the panel.
  var attachBtn = $("button.attach"), picker = $("input.pick");
  viewer = $(".viewer");
  attachBtn.addEventListener("click", function () { picker.click(); });
  picker.addEventListener("change", function () { sendImage(picker.files && picker.files[0]); picker.value = ""; });
  input.addEventListener("paste", function (e) {
    var files = (e.clipboardData && e.clipboardData.files) || [];
    for (var i = 0; i < files.length; i++) if (/^image\//.test(files[i].type)) { e.preventDefault(); sendImage(files[i]); return; }
  });
  panel.addEventListener("dragover", function (e) { if (imagesOn() && e.dataTransfer && Array.prototype.indexOf.call(e.dataTransfer.types, "Files") >= 0) { e.preventDefault(); panel.classList.add("drop"); } });
  panel.addEventListener("dragleave", function (e) { if (e.target === panel || !panel.contains(e.relatedTarget)) panel.classList.remove("drop"); });
  panel.addEventListener("drop", function (e) {
    panel.classList.remove("drop");
    if (!e.dataTransfer || !e.dataTransfer.files.length) return;
    e.preventDefault(); sendImage(e.dataTransfer.files[0]);
  });
  viewer.addEventListener("click", function () { viewer.classList.remove("show"); });
  document.addEventListener("keydown", function (e) { if (e.key === "Escape") viewer.classList.remove("show"); });
  // Ending is a step away from closing the panel, and asks first.
  endBtn.addEventListener("click", function () { confirmCard.classList.add("show"); $(".end-yes").focus(); });
  $(".c-cancel").addEventListener("click", function () { confirmCard.classList.remove("show"); });
  $(".end-yes").addEventListener("click", function () { confirmCard.classList.remove("show"); send({ action: "end" }); });
  stars.addEventListener("click", function (e) {
    var b = e.target.closest("button"); if (!b) return;
    score = Number(b.dataset.score);
    Array.prototype.forEach.call(stars.children, function (x) { x.classList.toggle("on", Number(x.dataset.score) <= score); });
  });
  $(".r-send").addEventListener("click", function () {
    if (!score) return;
    send({ action: "csat", score: score, comment: $(".r-comment").value.trim() });
  });
  $(".r-new").addEventListener("click", function () {
    // The old conversation is closed: a new connection opens a new one.
    rateCard.classList.remove("show"); closedView = false; rated = false; score = 0;
    stars.style.display = ""; $(".r-comment").style.display = ""; $(".r-send").style.display = "";
    rateCard.querySelector("h4").textContent = T.rateTitle;
    Array.prototype.forEach.call(stars.children, function (x) { x.classList.remove("on"); });
    log.innerHTML = ""; items = {}; texts = {}; dirty = {}; lastSeq = 0; conversationId = null;
    setOwner("bot");
    drop();
    backoff = 500; connect();
  });
  $(".o-cancel").addEventListener("click", function () { offlineCard.classList.remove("show"); });
  $(".o-send").addEventListener("click", function () {
    var text = $(".o-text").value.trim(); if (!text) return;
    send({ action: "offline_message", name: $(".o-name").value.trim(), contact: $(".o-contact").value.trim(), text: text });
  });
  function toggle(open) {
    panel.classList.toggle("open", open);
    save("open", open);
    if (open) { unread = 0; renderBadge(); setTimeout(function () { input.focus(); }, 30); scroll(); }
  }
  $(".launcher").addEventListener("click", function () { toggle(!panel.classList.contains("open")); });
  $("button.x").addEventListener("click", function () { toggle(false); });

  function start() {
    document.body.appendChild(host);
    greet();
    outbox.forEach(function (m) { bubble("c:" + m.client_msg_id, "visitor", m.text || (m.image ? T.image : ""), { extra: "pending", replay: true, at: idTime(m.client_msg_id) }); });
    setOwner("bot");
    if (ds.open === "true" || wasOpen) toggle(true);
    connect();
  }
  window.__kefuWidget = {
    open: function () { toggle(true); }, close: function () { toggle(false); },
    get state() { return { owner: owner, lastSeq: lastSeq, conversationId: conversationId, outbox: outbox.length, rated: rated, connected: !!(ws && ws.readyState === 1) }; },
    _socket: function () { return ws; }
  };
  if (document.body) start(); else document.addEventListener("DOMContentLoaded", start);
})();
