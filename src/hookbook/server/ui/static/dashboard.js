// hookbook dashboard: live updates, and nothing else.
//
// An element with data-live-url is refreshed from that URL, a JSON object
// {html, settled}: the server renders the fragment (escaped by Jinja2), and it
// replaces the element's content when it changed. Polling stops once a
// fragment says it is settled, pauses while the tab is hidden, and ends with a
// message when the session does. No request stays open, so a server can stop
// at any time.
(function () {
  "use strict";
  var INTERVAL = 500; // ms: new deliveries show within a second of being recorded
  var RETRY = 2000;

  function say(text) {
    var status = document.querySelector("[data-live-status]");
    if (status) status.textContent = text;
  }

  function follow(element) {
    var url = element.getAttribute("data-live-url");
    var shown = null;

    function later(delay) {
      window.setTimeout(tick, delay || INTERVAL);
    }

    function tick() {
      if (document.hidden) return later();
      fetch(url, {
        credentials: "same-origin",
        cache: "no-store",
        headers: { Accept: "application/json" },
      })
        .then(function (response) {
          if (response.status === 401) {
            say("Your session has ended: sign in again to see updates.");
            return null;
          }
          if (!response.ok) {
            say("Updates paused (HTTP " + response.status + "); trying again.");
            later(RETRY);
            return null;
          }
          return response.json().then(function (data) {
            if (data.html !== shown) {
              element.innerHTML = data.html;
              shown = data.html;
            }
            if (data.settled) {
              say("Settled: no more attempts will be made.");
            } else {
              later();
            }
          });
        })
        .catch(function () {
          say("The server does not answer; trying again.");
          later(RETRY);
        });
    }

    later();
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-live-url]").forEach(follow);
  });
})();
