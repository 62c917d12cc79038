// The live wait of a server-initiated sign-in: when the SSB app has
// answered, the server sends "success" with the URL that sets the session.
(function () {
  var status = document.getElementById("signin-status");
  if (!status || !window.EventSource) { return; }
  var es = new EventSource(status.getAttribute("data-events"));
  es.addEventListener("success", function (ev) {
    es.close();
    status.textContent = "Signed in. Opening the dashboard…";
    window.location.assign(ev.data);
  });
  es.addEventListener("failed", function (ev) {
    es.close();
    status.textContent = ev.data;
  });
})();
