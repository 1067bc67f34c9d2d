/*!
 * Kefu agent console: sign in (POST /v1/agent/login with tenant, e-mail and password), then
 * everything is live over the same WebSocket API the widget uses (agent token, role
 * agent/admin). Agent tokens are short-lived: the console refreshes its token before it expires
 * (POST /v1/agent/refresh) and (re)connects the WebSocket with the fresh one; when the server
 * refuses (access revoked) it returns to the sign-in form. Plain JavaScript.
 * Frames: docs/console.md.
 */
(function () {
  "use strict";
  var I18N = {
    zh: {
      appTitle: "Kefu 客服工作台", tenant: "组织 ID", signedOut: "您已退出，请重新登录", signOutAll: "退出所有设备", email: "邮箱", password: "密码", signIn: "登录", wrong: "组织、邮箱或密码错误", throttled: "尝试次数过多，请 {s} 秒后再试",
      online: "在线", away: "离开", waiting: "排队中", mine: "我的", botHandled: "机器人接待", others: "同事",
      logout: "退出", pick: "从左侧选择一个对话", take: "接管", transfer: "转接", release: "交还机器人",
      close: "结束对话", suggest: "AI 建议回复", send: "发送", customer: "客户信息", facts: "长期记忆",
      notes: "内部备注", addNote: "添加备注", connected: "已连接", reconnecting: "重连中…",
      owner_bot: "机器人接待中", owner_queue: "排队等待人工", owner_human: "人工接待中", closed: "已结束",
      visitor: "访客", assistant: "智能助手", agent: "客服", anonymous: "匿名访客（未登录）",
      notConfigured: "未配置", unavailable: "暂不可用", orders: "订单", tickets: "工单", none: "无",
      ev_queued: "访客请求人工服务", ev_agent_joined: "{name} 已接入", ev_returned_to_bot: "已交还机器人",
      ev_closed: "对话已结束", assigned: "新对话已分配给您", typing: "访客正在输入…", csat: "满意度评分",
      offline: "收到一条新留言", suggestionEmpty: "暂时没有建议", replyPlaceholder: "输入回复，Enter 发送，Shift+Enter 换行，/ 快捷回复",
      notePlaceholder: "仅同事可见", pos: "第 {n} 位", err_not_yours: "该对话不属于您", err_not_available: "该对话已被他人接管",
      transferTo: "转接给…", offlineTab: "访客留言",
      reason_button: "访客点击转人工", reason_keyword: "访客消息要求人工", reason_failures: "机器人多次未能回答",
      reason_llm: "机器人建议转人工", reason_agent: "客服主动接管", reason_admin: "管理员分配", reason_agent_offline: "原客服离线，重新排队",
      queuedUntil: "排队至 {t}（非工作时间）", queuedNoOpening: "非工作时间：未设置营业时段",
      closedNow: "非工作时间 · {t} 开始营业：排队的对话届时分配，提前上线可直接接入", closedNoOpening: "非工作时间（未设置营业时段）：可直接接入排队的对话",
      waitingFor: "已等待 {t}", firstReply: "首次响应 {t}", sec: "{n} 秒", min: "{n} 分钟", hour: "{h} 小时 {m} 分",
      yesterday: "昨天", now: "刚刚", mute: "关闭提醒声音", unmute: "打开提醒声音", details: "客户信息",
      newActivity: "新消息", colourSuffix: "色", visit: "访问信息", page: "页面", referrer: "来源", browser: "浏览器",
      language: "语言", timeZone: "时区", location: "位置", earlier: "历史对话", noEarlier: "无历史对话", st_open: "进行中", st_closed: "已结束",
      attach: "发送图片", image: "[图片]", uploading: "图片上传中 {p}%", imageFailed: "图片发送失败", imageUnreadable: "无法读取这张图片，请选择 JPG、PNG 或 WebP 图片",
      imageTooBig: "图片太大（最大 {mb} MB）", err_image_type: "无法读取这张图片，请选择 JPG、PNG 或 WebP 图片", err_image_corrupt: "无法读取这张图片",
      err_image_too_large: "图片太大", err_image_dimensions: "图片尺寸太大", err_image_missing: "图片上传已失效，请重新发送", err_too_many_images: "发送的图片太多，请稍后再试",
      err_images_unavailable: "此服务器未开启图片功能", closeImage: "关闭图片",
      colours: "红,橙,金,绿,青,蓝,紫,粉,银,棕,黑,白", animals: "狐狸,熊猫,海豚,老虎,兔子,鲸鱼,猫头鹰,企鹅,松鼠,小鹿,燕子,锦鲤,考拉,水獭,刺猬,仙鹤"
    },
    en: {
      appTitle: "Kefu agent console", tenant: "Organisation ID", signedOut: "You were signed out: please sign in again", signOutAll: "Sign out everywhere", email: "E-mail", password: "Password", signIn: "Sign in", wrong: "Wrong organisation, e-mail or password", throttled: "Too many attempts: try again in {s} s",
      online: "Online", away: "Away", waiting: "Waiting", mine: "Mine", botHandled: "Bot", others: "Colleagues",
      logout: "Sign out", pick: "Pick a conversation on the left", take: "Take over", transfer: "Transfer", release: "Hand back to bot",
      close: "Close", suggest: "Suggest reply", send: "Send", customer: "Customer", facts: "Long-term memory",
      notes: "Private notes", addNote: "Add note", connected: "Connected", reconnecting: "Reconnecting…",
      owner_bot: "Handled by the bot", owner_queue: "Waiting for a human", owner_human: "Handled by a human", closed: "Closed",
      visitor: "Visitor", assistant: "Assistant", agent: "Agent", anonymous: "Anonymous visitor (not signed in)",
      notConfigured: "not configured", unavailable: "unavailable", orders: "Orders", tickets: "Tickets", none: "none",
      ev_queued: "The visitor asked for a human", ev_agent_joined: "{name} joined", ev_returned_to_bot: "Handed back to the bot",
      ev_closed: "Conversation closed", assigned: "A conversation was assigned to you", typing: "Visitor is typing…", csat: "Satisfaction",
      offline: "New offline message", suggestionEmpty: "No suggestion right now", replyPlaceholder: "Reply. Enter sends, Shift+Enter for a new line, / for canned replies",
      notePlaceholder: "Visible to colleagues only", pos: "#{n}", err_not_yours: "This conversation is not yours", err_not_available: "Someone else took it",
      transferTo: "Transfer to…", offlineTab: "Offline messages",
      reason_button: "visitor pressed “talk to a human”", reason_keyword: "visitor asked for a human", reason_failures: "the bot failed repeatedly",
      reason_llm: "the bot suggested a human", reason_agent: "taken over by an agent", reason_admin: "assigned by an admin", reason_agent_offline: "the agent went offline, queued again",
      queuedUntil: "queued until {t} (outside business hours)", queuedNoOpening: "outside business hours: no opening set",
      closedNow: "Outside business hours · opens {t}: the queue is assigned then; take a conversation now if you are in early", closedNoOpening: "Outside business hours (no opening set): take a conversation if you are in",
      waitingFor: "waiting {t}", firstReply: "first reply after {t}", sec: "{n} s", min: "{n} min", hour: "{h} h {m} min",
      yesterday: "Yesterday", now: "just now", mute: "Mute alert sounds", unmute: "Turn alert sounds on", details: "Customer",
      newActivity: "New activity", colourSuffix: "", visit: "Visit", page: "Page", referrer: "Came from", browser: "Browser",
      language: "Language", timeZone: "Time zone", location: "Location", earlier: "Earlier conversations", noEarlier: "No earlier conversations", st_open: "open", st_closed: "closed",
      attach: "Send an image", image: "[Image]", uploading: "Uploading the image {p}%", imageFailed: "The image could not be sent", imageUnreadable: "This file can't be read as a picture. Pick a JPG, PNG or WebP image",
      imageTooBig: "The image is too large (max {mb} MB)", err_image_type: "This file can't be read as a picture. Pick a JPG, PNG or WebP image", err_image_corrupt: "The image could not be read",
      err_image_too_large: "The image is too large", err_image_dimensions: "The image has too many pixels", err_image_missing: "The upload expired, send the image again", err_too_many_images: "Too many images, please wait a moment",
      err_images_unavailable: "Images are not enabled on this server", closeImage: "Close the image",
      colours: "Red,Orange,Golden,Green,Teal,Blue,Purple,Pink,Silver,Brown,Black,White", animals: "Fox,Panda,Dolphin,Tiger,Rabbit,Whale,Owl,Penguin,Squirrel,Deer,Swallow,Koi,Koala,Otter,Hedgehog,Crane"
    }
  };
  var lang = localStorage.getItem("kefu.console.lang") || ((navigator.language || "zh").toLowerCase().indexOf("zh") === 0 ? "zh" : "en");
  function t(key, vars) {
    var s = (I18N[lang] || I18N.zh)[key] || key;
    return s.replace(/\{(\w+)\}/g, function (_, k) { return vars && vars[k] != null ? vars[k] : ""; });
  }
  function $(id) { return document.getElementById(id); }
  // -- names and times ------------------------------------------------------------------------
  // An anonymous visitor gets a stable friendly label from their id ("Blue Fox #3F2A"): the same
  // visitor is the same label on every agent's screen and after a reload.
  function hash(str) {
    var h = 2166136261;
    for (var i = 0; i < str.length; i++) { h ^= str.charCodeAt(i); h = Math.imul(h, 16777619); }
    return h >>> 0;
  }
  function visitorLabel(c) {
    if (c.customer_id) return c.customer_id;
    var id = String(c.visitor_id || ""), h = hash(id);
    var colours = t("colours").split(","), animals = t("animals").split(",");
    var colour = colours[h % colours.length], animal = animals[(h >>> 8) % animals.length];
    var tag = "#" + id.replace(/[^0-9a-zA-Z]/g, "").slice(-4).toUpperCase();
    return (lang === "zh" ? colour + t("colourSuffix") + animal : colour + " " + animal) + " " + tag;
  }
  function reasonText(code) { var k = "reason_" + code, s = t(k); return s === k ? String(code) : s; }
  function two(n) { return (n < 10 ? "0" : "") + n; }
  function when(iso) {
    var d = iso ? new Date(iso) : new Date();
    if (isNaN(d.getTime())) return "";
    var now = new Date(), hm = two(d.getHours()) + ":" + two(d.getMinutes());
    var day = new Date(now.getFullYear(), now.getMonth(), now.getDate()).getTime();
    if (d.getTime() >= day) return hm;
    if (d.getTime() >= day - 86400000) return t("yesterday") + " " + hm;
    return two(d.getMonth() + 1) + "-" + two(d.getDate()) + " " + hm;
  }
  function duration(ms) {
    var s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return t("sec", { n: s });
    if (s < 3600) return t("min", { n: Math.floor(s / 60) });
    return t("hour", { h: Math.floor(s / 3600), m: Math.floor(s % 3600 / 60) });
  }
  // An opening (ISO 8601), in the agent's own time zone with the zone named.
  function opening(iso) {
    var opts = { weekday: "short", hour: "2-digit", minute: "2-digit", hour12: false, timeZoneName: "short" };
    if (Date.parse(iso) - Date.now() > 6 * 86400000) { opts.month = "short"; opts.day = "numeric"; }
    try { return new Intl.DateTimeFormat(lang === "zh" ? "zh-CN" : "en-GB", opts).format(new Date(iso)); } catch (e) { return iso; }
  }
  // Still before the opening: a stale list stops saying "queued until" once it has passed.
  function closedUntil(iso) { return iso === null || (iso !== undefined && Date.parse(iso) > Date.now()); }
  function renderHours() {
    var note = $("hours-note"), h = queue.hours;
    if (!note) { note = el("div", "hours-note"); note.id = "hours-note"; $("list").parentNode.insertBefore(note, $("list")); }
    var closed = h && h.open === false && closedUntil(h.next_opening);
    note.hidden = !closed;
    note.textContent = closed ? (h.next_opening ? t("closedNow", { t: opening(h.next_opening) }) : t("closedNoOpening")) : "";
  }
  function since(iso) { var ms = Date.parse(iso); return isNaN(ms) ? "" : duration(Date.now() - ms); }
  function el(tag, cls, text) { var e = document.createElement(tag); if (cls) e.className = cls; if (text != null) e.textContent = text; return e; }
  function applyI18n() {
    document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
    document.querySelectorAll("[data-i18n]").forEach(function (n) { n.textContent = t(n.dataset.i18n); });
    $("text").placeholder = t("replyPlaceholder"); $("note-text").placeholder = t("notePlaceholder");
    renderTitle();
    if ($("mute")) renderMute();
  }
  document.querySelectorAll("[data-lang]").forEach(function (a) {
    a.addEventListener("click", function (e) { e.preventDefault(); lang = a.dataset.lang; localStorage.setItem("kefu.console.lang", lang); applyI18n(); render(); });
  });

  var session = JSON.parse(sessionStorage.getItem("kefu.console.session") || "null");
  var ws = null, backoff = 500, pingTimer = null, refreshTimer = null;
  var queue = { waiting: [], mine: [], bot: [], others: [] }, tab = "waiting";
  var current = null;          // { conversation, messages by seq }
  var msgEls = {}, msgData = {};  // seq -> element, seq -> the message (text: its Markdown source)
  var dirty = {}, frame = 0;      // streaming bubbles to paint on the next animation frame
  var agents = [];

  // -- alerts: a sound (unless muted) and the tab title for new queued conversations, new
  // assignments and visitor messages the agent is not looking at ------------------------------
  var muted = localStorage.getItem("kefu.console.muted") === "1", audio = null, unseen = 0;
  var alerts = [], knownWaiting = null;
  function unlockAudio() {
    try {
      audio = audio || new (window.AudioContext || window.webkitAudioContext)();
      if (audio.state === "suspended") audio.resume();
    } catch (e) { audio = null; }
  }
  document.addEventListener("pointerdown", unlockAudio);
  document.addEventListener("keydown", unlockAudio);
  function chime() {
    if (!audio) return false;
    var at = audio.currentTime;
    [880, 660].forEach(function (hz, i) {
      var osc = audio.createOscillator(), gain = audio.createGain(), t0 = at + i * 0.18;
      osc.frequency.value = hz;
      gain.gain.setValueAtTime(0.0001, t0);
      gain.gain.exponentialRampToValueAtTime(0.2, t0 + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, t0 + 0.16);
      osc.connect(gain); gain.connect(audio.destination);
      osc.start(t0); osc.stop(t0 + 0.17);
    });
    return true;
  }
  function attention() { return !document.hidden && document.hasFocus(); }
  function alertAgent(kind) {
    var sounded = !muted && chime();
    alerts.push({ kind: kind, sound: !muted, played: sounded, at: Date.now() });
    if (alerts.length > 50) alerts.shift();
    if (!attention()) { unseen++; renderTitle(); }
  }
  function renderTitle() { document.title = (unseen ? "(" + unseen + ") " + t("newActivity") + " · " : "") + t("appTitle"); }
  function seenAll() { if (unseen && attention()) { unseen = 0; renderTitle(); } }
  window.addEventListener("focus", seenAll);
  document.addEventListener("visibilitychange", seenAll);
  function renderMute() {
    var b = $("mute");
    // a bell, struck through when muted (constant markup: no data in it)
    b.innerHTML = '<svg viewBox="0 0 24 24" width="16" height="16" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" aria-hidden="true">' +
      '<path d="M6 8a6 6 0 0 1 12 0c0 7 3 9 3 9H3s3-2 3-9"/><path d="M10.3 21a1.94 1.94 0 0 0 3.4 0"/>' +
      (muted ? '<path d="M3 3l18 18"/>' : "") + "</svg>";
    b.classList.toggle("muted", muted);
    b.title = muted ? t("unmute") : t("mute");
    b.setAttribute("aria-label", b.title);
    b.setAttribute("aria-pressed", String(muted));
  }
  $("mute").addEventListener("click", function () {
    muted = !muted;
    localStorage.setItem("kefu.console.muted", muted ? "1" : "0");
    renderMute();
  });
  // A conversation newly in the waiting list (not the ones there when the console connected).
  function noticeWaiting(list) {
    var ids = {}, fresh = false;
    (list || []).forEach(function (c) { ids[c.id] = true; if (knownWaiting && !knownWaiting[c.id]) fresh = true; });
    knownWaiting = ids;
    if (fresh) alertAgent("queued");
  }

  function toast(text) {
    var n = $("toast"); n.textContent = text; n.hidden = false;
    clearTimeout(toast.timer); toast.timer = setTimeout(function () { n.hidden = true; }, 3500);
  }

  // -- login and token refresh ----------------------------------------------------------
  var tenantParam = new URLSearchParams(location.search).get("tenant");
  $("login-form").tenant.value = tenantParam || localStorage.getItem("kefu.console.tenant") || "";
  function keep(body) {
    session = { token: body.token, agent: body.agent, expiresAt: Date.now() + body.expires_in * 1000 };
    sessionStorage.setItem("kefu.console.session", JSON.stringify(session));
    scheduleRefresh();
  }
  function signedOut(message) {
    clearTimeout(refreshTimer); clearInterval(pingTimer);
    sessionStorage.removeItem("kefu.console.session"); session = null;
    if (ws) { var old = ws; ws = null; old.close(); }
    $("app").hidden = true; $("login").hidden = false;
    if (message) { var n = $("login-error"); n.textContent = message; n.hidden = false; }
  }
  // A fresh token while the agent's access is unchanged; 401 means it changed (deactivated,
  // new role or password, signed out everywhere): back to the sign-in form.
  function refresh() {
    return fetch("/v1/agent/refresh", { method: "POST", headers: { authorization: "Bearer " + session.token } })
      .then(function (r) {
        if (r.status === 401 || r.status === 403) { signedOut(t("signedOut")); throw new Error("signed out"); }
        if (!r.ok) throw new Error(r.status);
        return r.json();
      })
      .then(keep);
  }
  function scheduleRefresh() {
    clearTimeout(refreshTimer);
    if (!session) return;
    var left = session.expiresAt - Date.now();
    // two minutes before expiry (a third of the lifetime for very short tokens)
    var wait = Math.max(1000, Math.min(left - 120000, left * 2 / 3));
    refreshTimer = setTimeout(function () {
      if (!session) return;
      refresh().catch(function () { if (session) refreshTimer = setTimeout(scheduleRefresh, 10000); });
    }, wait);
  }
  document.addEventListener("visibilitychange", function () {
    // a laptop waking up: timers may have slept through the refresh
    if (!document.hidden && session && session.expiresAt - Date.now() < 180000) refresh().catch(function () {});
  });
  $("login-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var f = e.target;
    localStorage.setItem("kefu.console.tenant", f.tenant.value.trim());
    fetch("/v1/agent/login", { method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ tenant: f.tenant.value.trim(), email: f.email.value, password: f.password.value }) })
      .then(function (r) {
        if (r.status === 429) throw new Error(t("throttled", { s: r.headers.get("retry-after") || "60" }));
        if (!r.ok) throw new Error(t("wrong"));
        return r.json();
      })
      .then(function (body) {
        $("login-error").hidden = true; f.password.value = "";
        keep(body);
        start();
      })
      .catch(function (err) { var n = $("login-error"); n.textContent = err.message || t("wrong"); n.hidden = false; });
  });
  $("logout").addEventListener("click", function (e) {
    e.preventDefault(); signedOut();
    location.reload();
  });
  $("logout-all").addEventListener("click", function (e) {
    e.preventDefault();
    var token = session && session.token;
    var done = function () { signedOut(); location.reload(); };
    if (!token) return done();
    fetch("/v1/agent/sign-out", { method: "POST", headers: { authorization: "Bearer " + token } }).then(done, done);
  });

  // -- socket -----------------------------------------------------------------------------
  function send(frame) { if (ws && ws.readyState === 1) ws.send(JSON.stringify(frame)); }
  function reconnect() {
    // The socket dropped or was refused: refresh first (a revoked agent is signed out here),
    // then connect with the fresh token.
    if (!session) return;
    refresh().then(connect, function () {
      if (!session) return;
      setTimeout(reconnect, backoff); backoff = Math.min(backoff * 2, 15000);
    });
  }
  function connect() {
    if (!session) return;
    var proto = location.protocol === "https:" ? "wss" : "ws";
    var sock = new WebSocket(proto + "://" + location.host + "/prod?token=" + encodeURIComponent(session.token));
    ws = sock;
    sock.onopen = function () {
      backoff = 500;
      $("conn").textContent = t("connected"); $("conn").classList.remove("off");
      send({ action: "presence", status: $("presence").value });
      send({ action: "agents" });
      if (current) send({ action: "open", conversation_id: current.conversation.id });
      clearInterval(pingTimer);
      pingTimer = setInterval(function () { send({ action: "ping" }); }, 30000);
    };
    sock.onmessage = function (ev) { handle(JSON.parse(ev.data)); };
    sock.onclose = function (ev) {
      if (ws !== sock) return;
      clearInterval(pingTimer);
      $("conn").textContent = t("reconnecting"); $("conn").classList.add("off");
      if (!session) return;
      setTimeout(reconnect, backoff); backoff = Math.min(backoff * 2, 15000);
    };
  }

  function handle(f) {
    switch (f.type) {
      case "queue": noticeWaiting(f.waiting); queue = f; renderList(); break;
      case "queue_changed": send({ action: "queue" }); break;
      case "assigned": toast(t("assigned")); alertAgent("assigned"); if (tab === "waiting") tab = "mine"; send({ action: "queue" });
        if (!current) send({ action: "open", conversation_id: f.conversation_id });
        break;
      case "unassigned": send({ action: "queue" }); break;
      case "agents": agents = f.all || []; renderAgents(); break;
      case "conversation": openConversation(f); break;
      case "message":
        if (current && f.conversation_id === current.conversation.id) {
          addMessage({ seq: f.seq, role: f.role, text: f.text, agent_name: f.agent_name, status: "complete", image: f.image });
          if (f.role === "visitor") $("typing").textContent = "";
          if (f.role === "agent") renderHead();
        }
        if (f.role === "visitor" && (!current || f.conversation_id !== current.conversation.id || !attention())) alertAgent("message");
        send({ action: "queue" });
        break;
      case "ack":
        if (current && f.conversation_id === current.conversation.id) {
          var pending = current.pending[f.client_msg_id];
          if (pending != null) {
            addMessage({ seq: f.seq, role: "agent", text: pending.text != null ? pending.text : pending, image: pending.image, agent_name: session.agent.name, status: "complete" });
            delete current.pending[f.client_msg_id]; delete uploads[f.client_msg_id]; renderHead();
            if (!Object.keys(uploads).length) $("typing").textContent = "";
          }
        }
        break;
      case "delta":
        if (current && f.conversation_id === current.conversation.id) {
          var prev = msgData[f.seq] ? msgData[f.seq].text || "" : "";
          addMessage({ seq: f.seq, role: "assistant", text: head(prev, f.offset) + f.text, status: "streaming" }, true);
        }
        break;
      case "final":
        if (current && f.conversation_id === current.conversation.id) addMessage({ seq: f.seq, role: "assistant", text: f.text, status: f.status });
        break;
      case "state":
        if (current && f.conversation_id === current.conversation.id) {
          if (f.seq) addMessage({ seq: f.seq, role: "system", event: f.state === "bot" ? "returned_to_bot" : f.state, agent_name: f.agent_name });
          current.conversation.owner = { bot: "bot", queued: "queue", agent_joined: "human", closed: current.conversation.owner }[f.state];
          if (f.state === "agent_joined") current.conversation.assigned_agent = f.agent_id;
          if (f.state === "closed") current.conversation.status = "closed";
          renderHead();
        }
        break;
      case "typing":
        if (current && f.conversation_id === current.conversation.id && f.role === "visitor") {
          $("typing").textContent = t("typing");
          clearTimeout(handle.typing); handle.typing = setTimeout(function () { $("typing").textContent = ""; }, 5000);
        }
        break;
      case "note":
        if (current && f.conversation_id === current.conversation.id) { current.notes.push(f); renderNotes(); }
        break;
      case "suggestion":
        if (current && f.conversation_id === current.conversation.id) {
          $("suggest").disabled = false;
          // status "none": the engine had nothing to answer from, so there is no draft to offer
          if (f.text && f.status !== "none") { $("text").value = f.text; $("text").focus(); } else toast(t("suggestionEmpty"));
        }
        break;
      case "csat":
        if (current && f.conversation_id === current.conversation.id) { current.csat = { score: f.score, comment: f.comment }; renderSide(); }
        break;
      case "offline_message": toast(t("offline")); alertAgent("offline_message"); loadOffline(); break;
      case "upload": postImage(f); break;
      case "error":
        if (f.code === "unauthorized") { if (ws) ws.close(); break; }  // onclose refreshes or signs out
        if (f.client_msg_id && uploads[f.client_msg_id]) { delete uploads[f.client_msg_id]; $("typing").textContent = ""; }
        $("suggest").disabled = false; toast(t("err_" + f.code) !== "err_" + f.code ? t("err_" + f.code) : f.message); break;
    }
  }

  // -- rendering --------------------------------------------------------------------------
  function render() { renderList(); if (current) { renderHead(); renderLog(); renderSide(); } }
  var offline = [];
  function loadOffline() {
    fetch("/v1/offline-messages", { headers: { authorization: "Bearer " + session.token } })
      .then(function (r) { return r.ok ? r.json() : []; })
      .then(function (items) { offline = items; renderList(); })
      .catch(function () { /* shown again on the next refresh */ });
  }
  function renderOffline(list) {
    offline.forEach(function (m) {
      var li = el("li"); li.dataset.offline = String(m.id);
      var top = el("div", "v"); top.appendChild(el("span", null, (m.name || m.visitor_id.slice(0, 12)) + (m.contact ? " · " + m.contact : "")));
      top.appendChild(el("span", "pos", new Date(m.created_at).toLocaleString()));
      li.appendChild(top);
      li.appendChild(el("div", "p", m.text));
      if (m.conversation_id) li.addEventListener("click", function () { send({ action: "open", conversation_id: m.conversation_id }); });
      list.appendChild(li);
    });
  }
  function renderList() {
    ["waiting", "mine", "bot", "others"].forEach(function (k) { $("n-" + k).textContent = (queue[k] || []).length; });
    $("n-offline").textContent = offline.length;
    document.querySelectorAll(".tabs button").forEach(function (b) { b.classList.toggle("active", b.dataset.tab === tab); });
    var list = $("list"); list.innerHTML = "";
    renderHours();
    if (tab === "offline") { renderOffline(list); return; }
    (queue[tab] || []).forEach(function (c) {
      var li = el("li"); li.dataset.id = c.id;
      if (current && current.conversation.id === c.id) li.classList.add("active");
      var top = el("div", "v"); top.appendChild(el("span", "name", visitorLabel(c)));
      if (c.position) top.appendChild(el("span", "pos", t("pos", { n: c.position })));
      else top.appendChild(el("span", "at", when(c.updated_at)));
      li.appendChild(top);
      li.appendChild(el("div", "p", c.last_text || ""));
      if (c.owner === "queue" && c.queued_at) {
        li.appendChild(el("div", "wait", t("waitingFor", { t: since(c.queued_at) }) + (c.handoff_reason ? " · " + reasonText(c.handoff_reason) : "")));
      }
      if (c.owner === "queue" && closedUntil(c.queued_until)) {
        li.appendChild(el("div", "until", c.queued_until ? t("queuedUntil", { t: opening(c.queued_until) }) : t("queuedNoOpening")));
      }
      li.addEventListener("click", function () { send({ action: "open", conversation_id: c.id }); });
      list.appendChild(li);
    });
  }
  document.querySelectorAll(".tabs button").forEach(function (b) {
    b.addEventListener("click", function () { tab = b.dataset.tab; if (tab === "offline") loadOffline(); else send({ action: "queue" }); renderList(); });
  });
  function renderAgents() {
    var sel = $("transfer-to"); sel.innerHTML = "";
    var first = el("option", null, t("transferTo")); first.value = ""; sel.appendChild(first);
    agents.filter(function (a) { return a.id !== session.agent.id; }).forEach(function (a) {
      var o = el("option", null, a.name); o.value = a.id; sel.appendChild(o);
    });
  }
  function openConversation(f) {
    current = { conversation: f.conversation, notes: f.notes, customer: f.customer, csat: f.csat, pending: {},
                visit: f.visitor_context || null, earlier: f.earlier || [] };
    msgEls = {}; msgData = {}; dirty = {};
    $("empty").hidden = true; $("conv").hidden = false; $("side").hidden = false;
    $("log").innerHTML = ""; $("typing").textContent = "";
    f.messages.forEach(function (m) { addMessage(m); });
    renderHead(); renderSide(); renderList();
  }
  function renderHead() {
    var c = current.conversation;
    var biz = current.customer && current.customer.business && current.customer.business.customer;
    $("conv-title").textContent = (biz && biz.name ? biz.name + " · " : "") + visitorLabel(c);
    $("conv-title").title = c.visitor_id;
    var state = c.status === "closed" ? t("closed") : t("owner_" + c.owner);
    var parts = [state];
    if (c.handoff_reason && c.owner !== "bot") parts.push(reasonText(c.handoff_reason));
    if (c.status === "open" && c.owner === "queue" && c.queued_at) parts.push(t("waitingFor", { t: since(c.queued_at) }));
    var first = firstReply();
    if (first != null) parts.push(t("firstReply", { t: duration(first) }));
    $("conv-state").textContent = parts.join(" · ");
    var mine = c.owner === "human" && c.assigned_agent === session.agent.id && c.status === "open";
    var admin = session.agent.role === "admin";
    $("take").hidden = !(c.status === "open" && (c.owner === "bot" || c.owner === "queue"));
    $("transfer").hidden = $("transfer-to").hidden = !(mine || (admin && c.status === "open"));
    $("release").hidden = !(mine || (admin && c.status === "open" && c.owner !== "bot"));
    $("close").hidden = c.status !== "open" || (c.owner === "human" && !mine && !admin);
    $("compose").hidden = !mine;
  }
  // From the visitor asking for a human (the "queued" event) to the first agent message after it.
  function firstReply() {
    var asked = null, all = current.all || [];
    for (var i = 0; i < all.length; i++) {
      var m = all[i];
      if (m.role === "system" && m.event === "queued" && m.at && asked == null) asked = Date.parse(m.at);
      if (m.role === "agent" && asked != null && m.at) return Date.parse(m.at) - asked;
    }
    return null;
  }
  function renderLog() {
    $("log").innerHTML = ""; var all = current.all || []; current.all = []; msgEls = {}; msgData = {}; dirty = {};
    all.forEach(function (m) { addMessage(m); });
  }
  // The first n characters (code points, as the server counts them) of s.
  function head(s, n) { var cps = Array.from(s); return cps.length > n ? cps.slice(0, n).join("") : s; }
  function scrollLog() { $("log").scrollTop = $("log").scrollHeight; }
  // Assistant and agent messages are rendered as safe Markdown (web/markdown.js); visitor
  // messages are plain text.
  function paint(seq) {
    var m = msgData[seq], b = msgEls[seq] && msgEls[seq].querySelector(".b");
    if (!m || !b) return;
    picture(msgEls[seq], m.image);
    if (m.role === "visitor") { b.className = m.text ? "b" : "b empty"; b.textContent = m.text; return; }
    b.className = m.text || !m.image ? "b md" : "b md empty";
    b.textContent = "";
    b.appendChild(KefuMarkdown.render(m.text));
  }
  function paintDirty() {
    frame = 0;
    var seqs = Object.keys(dirty);
    dirty = {};
    seqs.forEach(paint);
    if (seqs.length) scrollLog();
  }
  // defer: a streaming reply, painted once per animation frame from its whole text so far.
  function addMessage(m, defer) {
    current.all = current.all || [];
    var existing = msgEls[m.seq];
    if (existing) m = Object.assign(msgData[m.seq], m);
    else { current.all.push(m); msgData[m.seq] = m; }
    if (!m.at) m.at = new Date().toISOString();  // a live message: now
    var node = existing || el("div");
    if (m.role === "system") {
      node.className = "sys";
      node.textContent = "";
      var said = m.event ? t("ev_" + m.event, { name: m.agent_name || t("agent") }) : (m.text || "");
      if (m.event === "queued" && m.opens_at !== undefined) said += " · " + (m.opens_at ? t("queuedUntil", { t: opening(m.opens_at) }) : t("queuedNoOpening"));
      node.appendChild(el("span", null, said));
      node.appendChild(el("time", "at", when(m.at)));
    } else {
      node.className = "msg " + m.role + (m.status === "incomplete" || m.status === "streaming" ? " " + m.status : "");
      if (!node.firstChild) {
        var col = el("div");
        col.appendChild(el("div", "who"));
        col.appendChild(el("div", "b"));
        node.appendChild(col);
      }
      var who = node.querySelector(".who");
      who.textContent = m.role === "agent" ? (m.agent_name || t("agent")) : m.role === "visitor" ? visitorLabel(current.conversation) : t(m.role);
      who.appendChild(el("time", "at", when(m.at)));
    }
    if (!existing) { $("log").appendChild(node); msgEls[m.seq] = node; }
    if (m.role === "system") { scrollLog(); return; }
    if (defer) {
      dirty[m.seq] = true;
      if (!frame) frame = requestAnimationFrame(paintDirty);
      return;
    }
    delete dirty[m.seq];
    paint(m.seq);
    scrollLog();
  }
  // -- images: thumbnails in the log, the picture in a viewer; an agent sends one like the widget
  var IMAGE_SIDE = 2048, THUMB = 240, MAX_IMAGE = 5242880, uploads = {};
  function imageUrl(url) {
    try { var u = new URL(url, location.origin + "/"); return /^(https?|blob):$/.test(u.protocol) ? u.href : null; } catch (e) { return null; }
  }
  function picture(node, image) {
    var url = image && imageUrl(image.url), col = node.firstChild, img = col.querySelector("img.pic");
    if (!url) return;
    if (!img) { img = el("img", "pic"); img.alt = t("image"); img.loading = "lazy"; col.insertBefore(img, col.querySelector(".b")); }
    if (image.width && image.height) {
      var k = Math.min(1, THUMB / image.width, THUMB / image.height);
      img.width = Math.max(1, Math.round(image.width * k)); img.height = Math.max(1, Math.round(image.height * k));
    }
    if (img.getAttribute("src") !== url) img.src = url;
  }
  $("log").addEventListener("click", function (e) {
    var pic = e.target.closest && e.target.closest("img.pic");
    if (pic) { $("viewer-img").src = pic.src; $("viewer").hidden = false; $("viewer-close").focus(); }
  });
  $("viewer").addEventListener("click", function () { $("viewer").hidden = true; });
  document.addEventListener("keydown", function (e) { if (e.key === "Escape") $("viewer").hidden = true; });
  // Drawn again on a canvas at most IMAGE_SIDE a side: pixels only leave the browser.
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
        return r.blob && r.blob.size > MAX_IMAGE && png ? encode("image/jpeg") : r;
      });
    });
  }
  function sendImage(file) {
    if (!file || !current) return;
    if (!/^image\//.test(file.type)) { toast(t("imageUnreadable")); return; }
    var conversationId = current.conversation.id;
    reencode(file).then(function (r) {
      if (!r.blob) throw new Error("encode");
      if (r.blob.size > MAX_IMAGE) { toast(t("imageTooBig", { mb: MAX_IMAGE / 1048576 })); return; }
      var id = "a-" + Date.now().toString(36) + Math.random().toString(36).slice(2, 8);
      uploads[id] = { blob: r.blob, type: r.type, conversation_id: conversationId,
                      preview: { url: URL.createObjectURL(r.blob), width: r.width, height: r.height } };
      $("typing").textContent = t("uploading", { p: 0 });
      send({ action: "upload", client_msg_id: id, conversation_id: conversationId, content_type: r.type, size: r.blob.size });
    }).catch(function () { toast(t("imageUnreadable")); });
  }
  function postImage(f) {
    var id = f.client_msg_id, u = uploads[id], target = imageUrl(f.url);
    if (!u || !target) return;
    var form = new FormData();
    Object.keys(f.fields || {}).forEach(function (k) { form.append(k, f.fields[k]); });
    form.append("file", u.blob, u.type === "image/png" ? "image.png" : "image.jpg");
    var xhr = new XMLHttpRequest();
    xhr.open("POST", target);
    xhr.upload.onprogress = function (e) { if (e.lengthComputable) $("typing").textContent = t("uploading", { p: Math.round(99 * e.loaded / e.total) }); };
    xhr.onload = function () {
      if (xhr.status < 200 || xhr.status > 299) { delete uploads[id]; $("typing").textContent = ""; toast(t("imageFailed")); return; }
      if (current && current.conversation.id === u.conversation_id) current.pending[id] = { text: "", image: u.preview };
      send({ action: "reply", conversation_id: u.conversation_id, client_msg_id: id, text: "", image: f.upload_id });
    };
    xhr.onerror = function () { delete uploads[id]; $("typing").textContent = ""; toast(t("imageFailed")); };
    xhr.send(form);
  }
  $("attach").addEventListener("click", function () { $("pick").click(); });
  $("pick").addEventListener("change", function () { sendImage($("pick").files[0]); $("pick").value = ""; });
  $("text").addEventListener("paste", function (e) {
    var files = (e.clipboardData && e.clipboardData.files) || [];
    for (var i = 0; i < files.length; i++) if (/^image\//.test(files[i].type)) { e.preventDefault(); sendImage(files[i]); return; }
  });
  $("compose").addEventListener("dragover", function (e) { e.preventDefault(); });
  $("compose").addEventListener("drop", function (e) {
    if (!e.dataTransfer || !e.dataTransfer.files.length) return;
    e.preventDefault(); sendImage(e.dataTransfer.files[0]);
  });
  function kv(obj, keys) {
    var box = el("div", "kv");
    keys.forEach(function (k) { if (obj[k] != null && obj[k] !== "") { var row = el("div"); row.appendChild(el("span", null, k)); row.appendChild(el("span", null, String(obj[k]))); box.appendChild(row); } });
    return box;
  }
  function reason(code) { return code === "not_configured" ? t("notConfigured") : code === "anonymous_visitor" ? t("anonymous") : t("unavailable"); }
  function renderSide() {
    var cust = current.customer || {}, box = $("customer"); box.innerHTML = "";
    var un = cust.unavailable || {};
    if (cust.business) {
      box.appendChild(kv(cust.business.customer, ["name", "id", "tier", "phone", "email"]));
      box.appendChild(el("h4", null, t("orders")));
      (cust.business.orders || []).forEach(function (o) { box.appendChild(el("div", "order", o.id + " · " + o.status + " · " + o.total + " " + (o.currency || ""))); });
      box.appendChild(el("h4", null, t("tickets")));
      (cust.business.tickets || []).forEach(function (tk) { box.appendChild(el("div", "ticket", tk.id + " · " + tk.subject + " · " + tk.status)); });
    } else {
      box.appendChild(el("div", "muted", reason(un.business)));
    }
    renderVisit(box);
    var facts = $("facts"); facts.innerHTML = "";
    if (cust.facts && cust.facts.length) cust.facts.forEach(function (fa) { facts.appendChild(el("div", "fact", fa.key + ": " + fa.value)); });
    else facts.appendChild(el("div", "muted", cust.facts ? t("none") : reason(un.facts)));
    renderNotes();
    var cs = $("csat"); cs.innerHTML = "";
    if (current.csat) { cs.appendChild(el("h3", null, t("csat"))); cs.appendChild(el("div", null, "★".repeat(current.csat.score) + " " + (current.csat.comment || ""))); }
  }
  // The visitor's page, referrer, browser, language, time zone and location, and their earlier
  // conversations. Every value is the visitor's (the page title is whatever the page says): text
  // only; a page address is a link only when it is http(s).
  function link(url) {
    var a;
    try { a = new URL(url); } catch (e) { return el("span", null, url); }
    if (a.protocol !== "http:" && a.protocol !== "https:") return el("span", null, url);
    var n = el("a", null, url); n.href = a.href; n.target = "_blank"; n.rel = "noopener noreferrer";
    return n;
  }
  function row(box, label, value) {
    if (!value) return;
    var r = el("div"); r.appendChild(el("span", null, label));
    r.appendChild(typeof value === "string" ? el("span", null, value) : value);
    box.appendChild(r);
  }
  function renderVisit(box) {
    var v = current.visit;
    box.appendChild(el("h4", null, t("visit")));
    var kvBox = el("div", "kv visit");
    if (v) {
      if (v.title || v.url) {
        var page = el("span", "page");
        if (v.title) page.appendChild(el("b", null, v.title));
        if (v.url) page.appendChild(link(v.url));
        row(kvBox, t("page"), page);
      }
      if (v.referrer) row(kvBox, t("referrer"), link(v.referrer));
      row(kvBox, t("browser"), v.browser);
      row(kvBox, t("language"), v.language);
      row(kvBox, t("timeZone"), v.time_zone);
      row(kvBox, t("location"), v.country);
    }
    if (!kvBox.firstChild) kvBox.appendChild(el("div", "muted", t("none")));
    box.appendChild(kvBox);
    box.appendChild(el("h4", null, t("earlier")));
    if (!current.earlier.length) box.appendChild(el("div", "muted", t("noEarlier")));
    current.earlier.forEach(function (c) {
      var item = el("div", "earlier");
      item.appendChild(el("span", null, when(c.created_at) + " · " + t("st_" + c.status)));
      if (c.last_text) item.appendChild(el("div", "p", c.last_text));
      item.addEventListener("click", function () { send({ action: "open", conversation_id: c.id }); });
      box.appendChild(item);
    });
  }
  function renderNotes() {
    var ul = $("notes"); ul.innerHTML = "";
    current.notes.forEach(function (n) { var li = el("li", null, n.text); li.appendChild(el("small", null, (n.agent_name || n.agent_id) + " · " + new Date(n.created_at).toLocaleString())); ul.appendChild(li); });
  }

  // -- actions ----------------------------------------------------------------------------
  function act(action) { return function () { if (current) send({ action: action, conversation_id: current.conversation.id }); }; }
  $("take").addEventListener("click", act("take"));
  $("release").addEventListener("click", act("release"));
  $("close").addEventListener("click", act("close"));
  $("suggest").addEventListener("click", function () { $("suggest").disabled = true; act("suggest")(); });
  $("transfer").addEventListener("click", function () {
    var to = $("transfer-to").value; if (!to || !current) return;
    send({ action: "transfer", conversation_id: current.conversation.id, agent_id: to });
  });
  $("compose").addEventListener("submit", function (e) {
    e.preventDefault();
    var text = $("text").value.trim(); if (!text || !current) return;
    var id = "a-" + Date.now().toString(36) + Math.random().toString(36).slice(2, 8);
    current.pending[id] = text;
    send({ action: "reply", conversation_id: current.conversation.id, client_msg_id: id, text: text });
    $("text").value = "";
  });
  $("text").addEventListener("keydown", function (e) {
    if (cannedKey(e)) return;
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); $("compose").requestSubmit(); }
  });
  // -- canned replies: "/" then a shortcut; ↑/↓ to choose, Enter or Tab to insert, Esc to close
  var canned = [], picks = [], picked = 0;
  function loadCanned() {
    fetch("/v1/canned-replies", { headers: { authorization: "Bearer " + session.token } })
      .then(function (r) { return r.ok ? r.json() : []; })
      .then(function (items) { canned = items; })
      .catch(function () { /* none until the next sign-in */ });
  }
  function renderCanned() {
    var box = $("canned"), v = $("text").value, m = /^\/([\w-]*)$/.exec(v);
    picks = !m ? [] : canned.filter(function (c) {
      var q = m[1].toLowerCase();
      return c.shortcut.toLowerCase().indexOf(q) === 0 || (q && c.text.toLowerCase().indexOf(q) >= 0);
    }).slice(0, 8);
    if (picked >= picks.length) picked = 0;
    box.innerHTML = "";
    picks.forEach(function (c, i) {
      var li = el("li", i === picked ? "on" : null);
      li.appendChild(el("b", null, "/" + c.shortcut));
      li.appendChild(el("span", null, c.text));
      li.addEventListener("mousedown", function (e) { e.preventDefault(); insertCanned(i); });
      box.appendChild(li);
    });
    box.hidden = !picks.length;
  }
  function insertCanned(i) {
    var c = picks[i]; if (!c) return;
    $("text").value = c.text; picks = []; $("canned").hidden = true; $("text").focus();
  }
  function cannedKey(e) {
    if ($("canned").hidden || e.isComposing) return false;
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      picked = (picked + (e.key === "ArrowDown" ? 1 : picks.length - 1)) % picks.length;
      renderCanned();
    } else if (e.key === "Enter" || e.key === "Tab") insertCanned(picked);
    else if (e.key === "Escape") { picks = []; $("canned").hidden = true; }
    else return false;
    e.preventDefault();
    return true;
  }
  $("text").addEventListener("input", function () { picked = 0; renderCanned(); });
  $("text").addEventListener("blur", function () { $("canned").hidden = true; });
  var lastTyping = 0;
  $("text").addEventListener("input", function () {
    if (current && Date.now() - lastTyping > 2000) { lastTyping = Date.now(); send({ action: "typing", conversation_id: current.conversation.id }); }
  });
  $("note-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var text = $("note-text").value.trim(); if (!text || !current) return;
    send({ action: "note", conversation_id: current.conversation.id, text: text });
    $("note-text").value = "";
  });
  $("presence").addEventListener("change", function () { send({ action: "presence", status: $("presence").value }); });

  function start() {
    scheduleRefresh();
    $("login").hidden = true; $("app").hidden = false;
    $("me-name").textContent = session.agent.name + (session.agent.role === "admin" ? " (admin)" : "");
    connect();
    loadOffline();
    loadCanned();
  }
  applyI18n();
  if (session && session.expiresAt > Date.now() + 5000) start();
  else { if (session) signedOut(t("signedOut")); $("login").hidden = false; }
  // Waiting times and "first reply" figures move with the clock.
  setInterval(function () { if (!session) return; renderList(); if (current) renderHead(); }, 30000);
  $("toggle-side").addEventListener("click", function () { document.body.classList.toggle("side-open"); });
  $("close-side").addEventListener("click", function () { document.body.classList.remove("side-open"); });
  window.__kefuConsole = { get current() { return current; }, get queue() { return queue; }, get alerts() { return alerts.slice(); }, get unseen() { return unseen; } };
})();
