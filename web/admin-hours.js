/*!
 * Kefu admin console: the "Business hours" screen (营业时间). When the tenant's agents answer:
 * a time zone, each weekday's intervals and the dates unlike their weekday (holidays, special
 * openings), kept in the tenant's settings (business_hours; docs/console.md, "Business hours").
 * Outside them the widget says when agents are back and handoffs queue for the opening.
 *
 * Loaded before admin.js, which adds it to the navigation (window.KefuAdminScreens) and hands
 * it its helpers (ui). Every value from the server is written with textContent or .value.
 */
(function () {
  "use strict";
  var DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
  var I18N = {
    zh: {
      hours: "营业时间",
      hoursHelp: "设置人工客服的服务时间。非工作时间，智能助手照常回答；小部件会告诉访客客服何时回来并提供留言；转人工请求会排队，到开始营业时再分配给客服（提前上线的客服也可以直接接入）。",
      hoursEnabled: "启用营业时间（不启用：全天 24 小时有人工客服）", timeZone: "时区（IANA，如 Asia/Shanghai）",
      weekly: "每周时间", weeklyHelp: "每天填写一个或多个时段，如 09:00-12:00, 13:30-18:00；留空表示休息。结束早于开始的时段跨夜（22:00-02:00）；00:00-24:00 表示全天。",
      day_mon: "周一", day_tue: "周二", day_wed: "周三", day_thu: "周四", day_fri: "周五", day_sat: "周六", day_sun: "周日",
      dates: "特殊日期", datesHelp: "每行一个日期：只写日期表示当天休息（节假日），日期后写时段表示当天按此时段营业（调休、临时营业）。例如：\n2026-10-01\n2026-10-11 09:00-18:00",
      badIntervals: "时段格式应为 HH:MM-HH:MM，多个时段用逗号分隔", badDates: "第 {n} 行格式不正确", emptyWeek: "已启用但没有任何营业时段：将一直显示为非工作时间。",
      saveHours: "保存营业时间", dayClosed: "休息"
    },
    en: {
      hours: "Business hours",
      hoursHelp: "When your agents answer. Outside these hours the assistant keeps answering; the widget tells visitors when agents are back and offers to leave a message; a request for a human is queued and assigned at the opening (an agent who is in early can still take it).",
      hoursEnabled: "Use business hours (off: agents answer around the clock)", timeZone: "Time zone (IANA, e.g. Asia/Shanghai)",
      weekly: "Each week", weeklyHelp: "One or more intervals a day, like 09:00-12:00, 13:30-18:00; leave a day empty when closed. An interval that ends before it starts runs overnight (22:00-02:00); 00:00-24:00 is the whole day.",
      day_mon: "Monday", day_tue: "Tuesday", day_wed: "Wednesday", day_thu: "Thursday", day_fri: "Friday", day_sat: "Saturday", day_sun: "Sunday",
      dates: "Special dates", datesHelp: "One date a line: a date alone is closed (a holiday); a date followed by intervals is open in those instead (a special opening). For example:\n2026-12-25\n2026-12-27 10:00-14:00",
      badIntervals: "Write intervals as HH:MM-HH:MM, separated by commas", badDates: "Line {n} is not a date with optional intervals", emptyWeek: "Business hours are on but no interval is set: the tenant will always show as closed.",
      saveHours: "Save business hours", dayClosed: "Closed"
    }
  };
  var INTERVAL = /^\s*(\d{2}:\d{2})\s*[-–~]\s*(\d{2}:\d{2})\s*$/;

  // "09:00-12:00, 13:30-18:00" -> [{start, end}, ...]; null when malformed.
  function intervals(text) {
    var parts = text.split(/[,，]/).map(function (p) { return p.trim(); }).filter(Boolean), out = [];
    for (var i = 0; i < parts.length; i++) {
      var m = INTERVAL.exec(parts[i]);
      if (!m) return null;
      out.push({ start: m[1], end: m[2] });
    }
    return out;
  }
  function written(list) { return (list || []).map(function (x) { return x.start + "-" + x.end; }).join(", "); }

  function render(root, ui) {
    var t = ui.t, el = ui.el, kids = ui.kids;
    root.appendChild(el("p", "muted", t("hoursHelp")));
    var card = ui.section(root, null);
    card.id = "hours"; card.hidden = true;  // shown once the settings are loaded
    var settings = null;
    var enabled = ui.input("enabled", "checkbox");
    var enabledLabel = kids(el("label", "check"), [enabled, el("span", null, t("hoursEnabled"))]);
    var zone = ui.input("time_zone"); zone.maxLength = 64; zone.required = true; zone.spellcheck = false;
    zone.setAttribute("list", "hours-zones");
    var zones = el("datalist"); zones.id = "hours-zones";
    try { (Intl.supportedValuesOf ? Intl.supportedValuesOf("timeZone") : []).forEach(function (z) { var o = el("option"); o.value = z; zones.appendChild(o); }); } catch (e) { /* old browser */ }
    var days = {}, grid = el("div", "hours-week");
    DAYS.forEach(function (d) {
      var box = ui.input("day-" + d); box.placeholder = t("dayClosed"); box.maxLength = 200; box.spellcheck = false;
      box.addEventListener("input", function () { box.setCustomValidity(intervals(box.value) ? "" : t("badIntervals")); });
      days[d] = box;
      grid.appendChild(ui.field("day_" + d, box));
    });
    var dates = el("textarea"); dates.name = "dates"; dates.rows = 5; dates.maxLength = 20000; dates.spellcheck = false;
    dates.placeholder = t("datesHelp").split("\n").slice(1).join("\n");
    var warn = el("p", "notice hours-empty"); warn.hidden = true; warn.textContent = t("emptyWeek");
    var f = ui.form("hours-form", [enabledLabel, ui.field("timeZone", zone), zones, el("h4", null, t("weekly")),
                              el("p", "muted", t("weeklyHelp")), grid, el("h4", null, t("dates")),
                              el("p", "muted pre", t("datesHelp")), dates, warn], "saveHours", function () {
      var hours = collect();
      if (!hours) return;
      ui.call("PUT", "/v1/admin/settings", Object.assign({}, settings, { business_hours: hours }))
        .then(function (saved) { settings = saved; show(saved.business_hours); ui.toast(t("saved")); }).catch(ui.fail);
    });
    card.appendChild(f);

    // The form's values as the API's business_hours, or null (the bad field says why).
    function collect() {
      var weekly = {}, bad = null;
      DAYS.forEach(function (d) {
        var list = intervals(days[d].value);
        days[d].setCustomValidity(list ? "" : t("badIntervals"));
        if (!list && !bad) bad = days[d];
        weekly[d] = list || [];
      });
      var rules = [];
      dates.setCustomValidity("");
      dates.value.split("\n").forEach(function (line, i) {
        line = line.trim();
        if (!line || bad) return;
        var m = /^(\d{4}-\d{2}-\d{2})(?:\s+(.*))?$/.exec(line), list = m && intervals(m[2] || "");
        if (!m || !list) { dates.setCustomValidity(t("badDates", { n: i + 1 })); bad = dates; return; }
        rules.push({ date: m[1], intervals: list });
      });
      if (bad) { bad.reportValidity(); return null; }
      return { enabled: enabled.checked, time_zone: zone.value.trim(), weekly: weekly, dates: rules };
    }
    function show(h) {
      enabled.checked = !!h.enabled; zone.value = h.time_zone;
      DAYS.forEach(function (d) { days[d].value = written(h.weekly[d]); days[d].setCustomValidity(""); });
      dates.value = (h.dates || []).map(function (r) { return r.date + (r.intervals.length ? " " + written(r.intervals) : ""); }).join("\n");
      warn.hidden = !(h.enabled && DAYS.every(function (d) { return !(h.weekly[d] || []).length; }) &&
                      (h.dates || []).every(function (r) { return !r.intervals.length; }));
    }
    ui.call("GET", "/v1/admin/settings").then(function (s) { settings = s; show(s.business_hours); card.hidden = false; }).catch(ui.fail);
  }

  (window.KefuAdminScreens = window.KefuAdminScreens || []).push({
    id: "hours", after: "widget", superAdmin: false, i18n: I18N, render: render
  });
})();
