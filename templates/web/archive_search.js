// The archive's search in the static export (newsletter archive): reads index.json beside this
// file and lists the articles holding every word of ?q=. The same rule as the server's search
// (newsletter/web/search.py). Results are built with textContent only, so nothing from the
// index or the query is ever parsed as HTML. Loaded as a same-origin file: CSP script-src 'self'.
(function () {
  "use strict";
  var form = document.getElementById("search-form");
  var input = document.getElementById("q");
  var results = document.getElementById("results");
  var status = document.getElementById("search-status");
  if (!form || !input || !results || !status) {
    return;
  }
  var QUERY_MAX = 200;
  var RESULTS_MAX = 50;

  function fold(text) {
    return text.normalize("NFKD").replace(/\p{M}/gu, "").toLowerCase().replace(/ß/g, "ss")
      .split(/\s+/).filter(Boolean).join(" ");
  }

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) {
      node.className = className;
    }
    if (text) {
      node.textContent = text;
    }
    return node;
  }

  function show(articles, query) {
    var words = fold(query.slice(0, QUERY_MAX)).split(" ").filter(Boolean);
    results.textContent = "";
    if (!words.length) {
      status.textContent = "";
      return;
    }
    var found = articles.filter(function (doc) {
      return words.every(function (word) { return doc.text.indexOf(word) !== -1; });
    });
    var inTitle = found.filter(function (doc) {
      var title = fold(doc.title);
      return words.some(function (word) { return title.indexOf(word) !== -1; });
    });
    var rest = found.filter(function (doc) { return inTitle.indexOf(doc) === -1; });
    var shown = inTitle.concat(rest).slice(0, RESULTS_MAX);
    status.textContent = shown.length
      ? shown.length + (shown.length === 1 ? " article" : " articles") + " found."
      : "No article holds every word of your search.";
    shown.forEach(function (doc) {
      var item = element("li", "result");
      var heading = element("h2", "result-title");
      var link = element("a", "", doc.title);
      link.href = "../" + doc.href;
      heading.appendChild(link);
      item.appendChild(heading);
      item.appendChild(element("p", "meta", doc.month + " · " + doc.issue));
      item.appendChild(element("p", "citation", doc.citation));
      item.appendChild(element("p", "", doc.snippet));
      results.appendChild(item);
    });
  }

  var query = new URLSearchParams(window.location.search).get("q") || "";
  input.value = query;
  if (!query.trim()) {
    return;
  }
  status.textContent = "Searching…";
  fetch("index.json", { credentials: "same-origin" })
    .then(function (answer) {
      if (!answer.ok) {
        throw new Error("HTTP " + answer.status);
      }
      return answer.json();
    })
    .then(function (index) { show(index.articles || [], query); })
    .catch(function (err) {
      status.textContent = "The search index (search/index.json) could not be loaded (" +
        err.message + "); browse by topic instead.";
    });
})();
