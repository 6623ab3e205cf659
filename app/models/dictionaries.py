"""Admin-editable data dictionaries (数据字典) behind the customer and follow-up forms."""

from __future__ import annotations

from flask_appbuilder import Model
from flask_babel import get_locale
from sqlalchemy import Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship


class DictionaryMixin:
    """Code, English and Chinese label, sort order, active flag, aliases.

    Inactive entries stay valid on old records but cannot be picked for new ones.
    ``aliases``: other names people write for the entry (信息技术, IT ...), one a line,
    normalised and unique across the dictionary (``app.services.dictionaries.check_entry``).
    """

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True, nullable=False)
    label_en: Mapped[str] = mapped_column(String(100), nullable=False)
    label_zh: Mapped[str] = mapped_column(String(100), nullable=False)
    sort_order: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    aliases: Mapped[str | None] = mapped_column(Text)

    @property
    def alias_list(self) -> list[str]:
        """The aliases, one per stored line (blank lines ignored)."""
        return [line.strip() for line in (self.aliases or "").splitlines() if line.strip()]

    @property
    def label(self) -> str:
        try:
            lang = str(get_locale() or "en")
        except Exception:  # outside a request: English
            lang = "en"
        return self.label_zh if lang.startswith("zh") else self.label_en

    def __repr__(self) -> str:
        return self.label


class CustomerType(DictionaryMixin, Model):
    """Potential / won / lost; changes are kept in the customer's status history."""

    __tablename__ = "dict_customer_type"


class Industry(DictionaryMixin, Model):
    """Two levels: GB/T 4754 sections and their divisions (制造业 > 汽车制造业), or an admin's own."""

    __tablename__ = "dict_industry"
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("dict_industry.id"))
    parent = relationship("Industry", remote_side="Industry.id", backref="children")

    @property
    def label(self) -> str:
        own = DictionaryMixin.label.fget(self)
        return f"{self.parent.label} > {own}" if self.parent is not None else own


class CustomerSource(DictionaryMixin, Model):
    __tablename__ = "dict_customer_source"


class FollowUpMethod(DictionaryMixin, Model):
    __tablename__ = "dict_follow_up_method"


class CustomerLevel(DictionaryMixin, Model):
    __tablename__ = "dict_customer_level"


DICTIONARIES = (CustomerType, Industry, CustomerSource, FollowUpMethod, CustomerLevel)
