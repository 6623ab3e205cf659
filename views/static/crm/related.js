/* Related fields chosen as the user types (views/related.py).
 *
 * A <select class="crm-related"> carries only its chosen record(s); this turns it into a
 * Select2 (served by Flask-AppBuilder) that asks data-related-url for one page of choices:
 * ?q=<typed text>&page=<0-based page>, answered as {results, pagination: {more}, message?}.
 * Selects added later (FAB's search filters clone a field when a filter is added) are
 * started too. Runs after crm/i18n.js, so Select2's messages are in the page's language.
 */
(function ($) {
    "use strict";
    if (!$) {
        return;
    }

    function start(element) {
        var $select = $(element);
        if (!$.fn.select2 || $select.data("select2") || !$select.data("relatedUrl")) {
            return;
        }
        $select.select2({
            theme: "bootstrap",
            width: "100%",
            allowClear: $select.data("allowClear") === true || $select.data("allowClear") === "true",
            placeholder: $select.data("placeholder") || "",
            ajax: {
                url: $select.data("relatedUrl"),
                dataType: "json",
                delay: 250,
                data: function (params) {
                    return {q: params.term || "", page: Math.max((params.page || 1) - 1, 0)};
                },
                processResults: function (data) {
                    var results = (data && data.results) || [];
                    if (data && data.message) {
                        results = results.concat([{id: "", text: data.message, disabled: true}]);
                    }
                    return {results: results, pagination: {more: !!(data && data.pagination && data.pagination.more)}};
                }
            }
        });
    }

    function scan(root) {
        $(root).find("select.crm-related").addBack("select.crm-related").each(function () {
            start(this);
        });
    }

    $(function () {
        scan(document);
        if (window.MutationObserver) {
            new MutationObserver(function (records) {
                records.forEach(function (record) {
                    Array.prototype.forEach.call(record.addedNodes, function (node) {
                        if (node.nodeType === 1) {
                            scan(node);
                        }
                    });
                });
            }).observe(document.body, {childList: true, subtree: true});
        }
    });
}(window.jQuery));
