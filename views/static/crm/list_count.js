/* "count all" beside a capped list total ("Record Count: 1,000+"): asks the list's count
 * endpoint (views/base.py CrmModelView.count, same arguments) and shows the exact figure.
 * The link carries its URL and texts in data- attributes (views/list_count.py).
 */
(function () {
    "use strict";
    document.addEventListener("click", function (event) {
        var link = event.target.closest ? event.target.closest("a.crm-count-all") : null;
        if (!link) {
            return;
        }
        event.preventDefault();
        var shown = link.closest(".crm-count");
        link.textContent = link.getAttribute("data-counting");
        fetch(link.getAttribute("data-url"), {credentials: "same-origin", headers: {"Accept": "application/json"}})
            .then(function (response) {
                return response.ok ? response.json() : Promise.reject(response.status);
            })
            .then(function (answer) {
                shown.textContent = answer.text;
            })
            .catch(function () {
                link.textContent = link.getAttribute("data-failed");
            });
    });
}());
