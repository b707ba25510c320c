// dg console: progressive enhancement only; every page works without it.
(function () {
  "use strict";
  // Tenant switcher submits on change.
  document.querySelectorAll("select[data-autosubmit]").forEach(function (s) {
    s.addEventListener("change", function () { s.form.submit(); });
  });

  // Workflow action form: the same checks the server makes, before submit.
  var form = document.getElementById("action-form");
  if (form) {
    form.addEventListener("submit", function (ev) {
      var action = form.elements.action.value;
      var val = function (n) { return (form.elements[n].value || "").trim(); };
      var msg = "";
      if (["approve", "reject", "request_change", "escalate", "override"].indexOf(action) >= 0 && !val("reason")) {
        msg = "A reason is required for " + action + ".";
      } else if (action === "comment" && !val("note") && !val("reason")) {
        msg = "A comment needs a note.";
      } else if (action === "reassign" && !val("assigned_account_id") && !val("assigned_role")) {
        msg = "Reassign needs an account or a role.";
      } else if (action === "override" && val("confirm_text") !== form.dataset.phrase) {
        msg = "Type the override phrase exactly: " + form.dataset.phrase;
      }
      var box = document.getElementById("action-error");
      if (msg) {
        ev.preventDefault();
        box.textContent = msg;
        box.hidden = false;
      } else {
        box.hidden = true;
      }
    });
  }

  // Live events: a server-sent events stream prepends new events.
  var list = document.getElementById("live-events");
  var status = document.getElementById("live-status");
  if (list && window.EventSource) {
    var es = new EventSource(list.dataset.stream);
    es.onopen = function () { status.textContent = "Live: new events appear at the top."; };
    es.onerror = function () { status.textContent = "Stream interrupted; reconnecting…"; };
    es.addEventListener("dg-event", function (m) {
      var e = JSON.parse(m.data);
      var empty = document.getElementById("live-empty");
      if (empty) { empty.remove(); }
      var li = document.createElement("li");
      li.className = "tl new " + e.tone;
      var head = document.createElement("div");
      head.className = "tl-head";
      var seq = document.createElement("span");
      seq.className = "seq";
      seq.textContent = "seq " + e.log_seq + " ";
      var type = document.createElement("strong");
      type.textContent = e.event_type;
      head.appendChild(seq);
      head.appendChild(type);
      var meta = document.createElement("div");
      meta.className = "small";
      var a = document.createElement("a");
      a.href = e.trace_url;
      a.textContent = e.trace_id;
      meta.appendChild(a);
      meta.appendChild(document.createTextNode(" · " + e.occurred_at + " · " + e.actor + (e.summary ? " · " + e.summary : "")));
      li.appendChild(head);
      li.appendChild(meta);
      list.insertBefore(li, list.firstChild);
      while (list.children.length > 100) { list.removeChild(list.lastChild); }
    });
  } else if (status) {
    status.textContent = "This browser cannot follow the live stream; reload to see new events.";
  }
})();
