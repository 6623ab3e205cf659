"""Landing page: what is in the user's scope, and what needs doing."""

from __future__ import annotations

from datetime import date

from flask import g
from flask_appbuilder import IndexView, expose
from sqlalchemy import func, select

from app.extensions import db
from app.models.customers import Customer, FollowUp
from app.security import alerts
from app.security.data_scope import scope_clause, user_scope


class CrmIndexView(IndexView):
    index_template = "crm/index.html"

    @expose("/")
    def index(self):
        user = getattr(g, "user", None)
        stats = None
        if user is not None and not user.is_anonymous:
            customers = db.session.scalar(
                select(func.count(Customer.id)).where(
                    scope_clause(user, Customer), Customer.archived_at.is_(None)
                )
            )
            due = db.session.scalar(
                select(func.count(FollowUp.id)).where(
                    scope_clause(user, FollowUp), FollowUp.next_step_date <= date.today()
                )
            )
            stats = {"customers": customers, "due": due, "scope": user_scope(user)}
            if self.appbuilder.sm.has_access("can_read", "SecurityAlert"):
                stats["alerts"] = alerts.recent_count()
        return self.render_template(self.index_template, appbuilder=self.appbuilder, stats=stats)
