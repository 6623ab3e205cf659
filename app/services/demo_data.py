"""Realistic demo customers and follow-ups for `python3 run.py --demo` (deterministic).

Codes are left empty: the before-flush hook numbers the records like any other save.
"""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from app.models.customers import Customer, FollowUp
from app.services.validation import credit_code_check_char

CITIES = ["深圳市", "上海", "杭州", "广州市", "苏州", "北京", "成都", "武汉", "南京", "宁波"]
BRANDS = ["华腾", "博远", "云启", "恒信", "金桥", "卓越", "瑞丰", "天成", "鼎盛", "锐捷", "新航", "汇通"]
TRADES = ["电子科技", "物流", "网络科技", "机械设备", "汽车零部件", "贸易", "软件", "精密制造"]
SUFFIXES = ["有限公司", "股份有限公司"]
EN_BRANDS = ["Northwind", "Bluepeak", "Silverline", "Redwood", "Harbor", "Summit", "Evergreen", "Brightstar"]
EN_TRADES = ["Trading Co., Ltd.", "Automotive Parts Ltd.", "Logistics Ltd.", "Electronics Co.", "Software Ltd."]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡"
GIVEN = ["伟", "芳", "娜", "敏", "静", "磊", "洋", "勇", "杰", "娟", "涛", "明", "超", "秀英", "建华"]
EN_NAMES = ["Emma Clark", "James Wood", "Olivia Hart", "Liam Scott", "Sophia Lee", "Noah Reed"]
ZH_NOTES = ["电话沟通需求，客户关注交期", "上门拜访，演示产品方案", "发送报价单，等待反馈", "客户要求安排技术交流会"]
EN_NOTES = ["Called to discuss the quote", "Visited the plant, demoed the product", "Sent the proposal by e-mail"]
CREDIT_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"


def _credit_code(rng: random.Random) -> str:
    first17 = "91" + "".join(rng.choice(CREDIT_CHARS) for _ in range(15))
    return first17 + credit_code_check_char(first17)


def _phone(rng: random.Random) -> str:
    if rng.random() < 0.8:
        return f"1{rng.choice('3456789')}{rng.randrange(10**9):09d}"
    return f"0{rng.choice(['755', '21', '571', '20', '10'])}-{rng.randrange(2 * 10**7, 9 * 10**7)}"


def _customer(rng: random.Random, owner: Any, dictionaries: dict[str, list]) -> Customer:
    chinese = rng.random() < 0.67
    if chinese:
        name = f"{rng.choice(CITIES)}{rng.choice(BRANDS)}{rng.choice(TRADES)}{rng.choice(SUFFIXES)}"
        contact = rng.choice(SURNAMES) + rng.choice(GIVEN)
        address = f"{rng.choice(CITIES)}{rng.choice(['科技园路', '人民路', '中山大道'])}{rng.randint(1, 999)}号"
    else:
        name = f"{rng.choice(EN_BRANDS)} {rng.choice(EN_TRADES)}"
        contact = rng.choice(EN_NAMES)
        address = f"{rng.randint(1, 300)} Harbour Road, Hong Kong"
    types = dictionaries["type"]
    return Customer(
        name=name, contact_name=contact, contact_phone=_phone(rng), address=address,
        credit_code=_credit_code(rng) if rng.random() < 0.5 else None,
        email=f"contact{rng.randrange(10**6)}@example.com",
        type=rng.choices(types, weights=[6, 3, 1][: len(types)] or None)[0] if types else None,
        industry=rng.choice(dictionaries["industry"]) if dictionaries["industry"] else None,
        level=rng.choice(dictionaries["level"]) if dictionaries["level"] else None,
        source=rng.choice(dictionaries["source"]) if dictionaries["source"] else None,
        owner=owner, created_by_fk=owner.id, changed_by_fk=owner.id,
        note=rng.choice(["", "2024年广交会接触", "Met at the Canton Fair"]) or None,
    )


def _follow_ups(rng: random.Random, customer: Customer, methods: list) -> list[FollowUp]:
    chinese = any("\u4e00" <= ch <= "\u9fff" for ch in customer.name)
    items = []
    for _ in range(rng.randint(1, 4)):
        when = datetime.now() - timedelta(days=rng.randint(0, 120), hours=rng.randint(0, 8))
        items.append(FollowUp(
            customer=customer, followed_at=when, method=rng.choice(methods) if methods else None,
            content=rng.choice(ZH_NOTES if chinese else EN_NOTES),
            next_step=rng.choice(["安排报价", "回访确认需求"] if chinese else ["Send quote", "Call back"]),
            next_step_date=date.today() + timedelta(days=rng.randint(-10, 30)),
            owner=customer.owner, created_by_fk=customer.owner.id, changed_by_fk=customer.owner.id,
        ))
    return items


def build_demo_customers(session: Session, owners: list, dictionaries: dict[str, list], count: int = 300,
                         seed: int = 7) -> int:
    """Add ``count`` customers with 1-4 follow-ups each, spread over ``owners``; flushes, no commit."""
    rng = random.Random(seed)
    for n in range(count):
        customer = _customer(rng, owners[n % len(owners)], dictionaries)
        session.add(customer)
        session.add_all(_follow_ups(rng, customer, dictionaries["method"]))
    session.flush()
    return count
