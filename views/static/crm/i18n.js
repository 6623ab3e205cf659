/* Flask-AppBuilder's browser-side texts in the page's language.
 *
 * FAB's scripts and the widgets it loads write English into the page: ab_alert('No row
 * selected'), select2's placeholder ("Select a State") and messages ("No results found"),
 * the date picker's month and day names. The server renders their translations into
 * #crm-browser-texts (appbuilder/general/browser_texts.html); this script applies them.
 * It runs in the page body, before ab.js (end of body) starts the widgets at DOM ready:
 * its own ready handler is registered first, so it runs first.
 */
(function ($) {
    "use strict";
    var node = document.getElementById("crm-browser-texts");
    if (!node || !$ || window.crmBrowserTexts) {
        return;
    }
    var texts = window.crmBrowserTexts = JSON.parse(node.textContent);

    function fill(template, n) {
        return template.replace("{n}", String(n));
    }

    function constant(text) {
        return function () { return text; };
    }

    function translateAlerts() {
        var original = window.ab_alert;
        if (typeof original === "function") {
            window.ab_alert = function (text) {
                return original(Object.prototype.hasOwnProperty.call(texts.alerts, text) ? texts.alerts[text] : text);
            };
        }
    }

    function translateSelect2() {
        var original = $.fn.select2;
        if (!original || !original.defaults) {
            return;
        }
        var t = texts.select2;
        original.defaults.set("language", {
            errorLoading: constant(t.errorLoading),
            inputTooLong: function (args) { return fill(t.inputTooLong, args.input.length - args.maximum); },
            inputTooShort: function (args) { return fill(t.inputTooShort, args.minimum - args.input.length); },
            loadingMore: constant(t.loadingMore),
            maximumSelected: function (args) { return fill(t.maximumSelected, args.maximum); },
            noResults: constant(t.noResults),
            searching: constant(t.searching),
            removeAllItems: constant(t.removeAllItems)
        });
        // FAB passes English placeholders in its own calls (ab.js): swap them on the way in.
        var wrapped = function (options) {
            var args = Array.prototype.slice.call(arguments);
            if (options && typeof options === "object" && typeof options.placeholder === "string"
                    && Object.prototype.hasOwnProperty.call(texts.placeholders, options.placeholder)) {
                args[0] = $.extend({}, options, {placeholder: texts.placeholders[options.placeholder]});
            }
            return original.apply(this, args);
        };
        $.extend(wrapped, original);
        $.fn.select2 = wrapped;
    }

    function names(options, dates) {
        var format = new Intl.DateTimeFormat(texts.locale, options);
        return dates.map(function (date) { return format.format(date); });
    }

    function translateDatepicker() {
        if (!$.fn.datepicker || !$.fn.datepicker.dates || typeof Intl === "undefined") {
            return;
        }
        var months = [], week = [], i;
        for (i = 0; i < 12; i++) {
            months.push(new Date(2024, i, 1));
        }
        for (i = 0; i < 7; i++) {
            week.push(new Date(2024, 0, 7 + i));  // 7 January 2024 was a Sunday, the picker's first day
        }
        $.fn.datepicker.dates.crm = {
            days: names({weekday: "long"}, week),
            daysShort: names({weekday: "short"}, week),
            daysMin: names({weekday: "narrow"}, week),
            months: names({month: "long"}, months),
            monthsShort: names({month: "short"}, months),
            today: texts.datepicker.today,
            clear: texts.datepicker.clear,
            titleFormat: texts.datepicker.titleFormat
        };
        $.fn.datepicker.defaults.language = "crm";
    }

    $(function () {
        translateAlerts();
        translateSelect2();
        translateDatepicker();
    });
}(window.jQuery));
