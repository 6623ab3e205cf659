/* The activities calendar (views/templates/crm/activity_calendar.html).
 *
 * FullCalendar 6 from views/static/vendor/fullcalendar (no CDN): month, week and list
 * views; events come from data-events-url for the visible range only (start/end as ISO
 * dates with the offset FullCalendar gives; the server refuses more than 62 days and
 * answers only activities in the reader's scope). A refused range shows the message.
 */
(function () {
    "use strict";
    var element = document.getElementById("activity-calendar");
    if (!element || !window.FullCalendar) {
        return;
    }
    var message = document.getElementById("calendar-message");
    var mine = document.getElementById("calendar-mine");

    function showError(text) {
        if (message) {
            message.textContent = text;
            message.classList.remove("hidden");
        }
    }

    var calendar = new window.FullCalendar.Calendar(element, {
        initialView: "dayGridMonth",
        locale: element.dataset.locale === "zh" ? "zh-cn" : "en",
        firstDay: 1,
        nowIndicator: true,
        headerToolbar: {left: "prev,next today", center: "title", right: "dayGridMonth,timeGridWeek,listWeek"},
        events: function (info, success, failure) {
            var params = new URLSearchParams({start: info.startStr, end: info.endStr});
            if (mine && mine.checked) {
                params.set("mine", "1");
            }
            fetch(element.dataset.eventsUrl + "?" + params.toString(), {credentials: "same-origin",
                headers: {"Accept": "application/json"}})
                .then(function (response) {
                    return response.json().then(function (body) {
                        if (!response.ok) {
                            throw new Error(body.message || response.statusText);
                        }
                        return {events: body, truncated: response.headers.get("X-Activities-Truncated")};
                    });
                })
                .then(function (answer) {
                    if (answer.truncated) {
                        showError(decodeURIComponent(answer.truncated));
                    } else if (message) {
                        message.classList.add("hidden");
                    }
                    success(answer.events);
                })
                .catch(function (error) {
                    showError(error.message);
                    failure(error);
                });
        }
    });
    calendar.render();
    if (mine) {
        mine.addEventListener("change", function () {
            calendar.refetchEvents();
        });
    }
}());
