// hookbook receiver inspector: deliveries by long polling, controls by JSON POSTs.
//
// The receiver renders each delivery (escaped by Jinja2); this script only
// inserts the fragments and sends the controls, with the page's token in a
// header (a custom header also means another site's page cannot send them).
(function () {
  "use strict";
  var token = document.querySelector('meta[name="hookbook-token"]').content;
  var list = document.getElementById("deliveries");
  var after = 0;
  var generation = -1;

  function show(state) {
    if (state.faults !== undefined) document.getElementById("faults").textContent = state.faults;
    if (state.total !== undefined) document.getElementById("total").textContent = state.total;
  }

  function poll() {
    var url = "/_hookbook/api/deliveries?wait=10&after=" + after + "&generation=" + generation;
    fetch(url, { headers: { "X-Hookbook-Token": token }, cache: "no-store" })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (data) {
        if (data.generation !== generation) {
          list.textContent = "";
          generation = data.generation;
        }
        if (data.html) list.insertAdjacentHTML("afterbegin", data.html);
        after = data.total;
        document.getElementById("live").textContent = data.total
          ? "Live: new deliveries appear at the top as they arrive."
          : "Waiting for deliveries; they appear here as they arrive, newest first.";
        show(data);
        poll();
      })
      .catch(function (error) {
        document.getElementById("live").textContent =
          "The receiver does not answer (" + error.message + "); trying again.";
        window.setTimeout(poll, 2000);
      });
  }

  function send(form) {
    var body = { action: form.getAttribute("data-action") };
    form.querySelectorAll("input").forEach(function (input) {
      body[input.name] = Number(input.value);
    });
    var result = document.getElementById("control-result");
    fetch("/_hookbook/api/faults", {
      method: "POST",
      headers: { "X-Hookbook-Token": token, "Content-Type": "application/json" },
      body: JSON.stringify(body),
    })
      .then(function (response) {
        return response.json().then(function (data) {
          result.textContent = (response.ok ? "Done: " : "Refused: ") + data.detail;
          result.className = "result " + (response.ok ? "ok" : "bad");
          show(data);
        });
      })
      .catch(function (error) {
        result.textContent = "The receiver does not answer: " + error.message;
        result.className = "result bad";
      });
  }

  document.querySelectorAll("form[data-action]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      send(form);
    });
  });
  poll();
})();
