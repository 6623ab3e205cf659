"""Realistic, deterministic demo customers and follow-ups.

Why this exists: ``python3 run.py --demo`` should open on a CRM that looks lived in (Chinese and
English companies, contacts, phone numbers, credit codes, a few months of follow-ups, overdue
next steps), and the benchmarks need the same kind of rows in bulk. Everything generated passes
the rules in ``app.services.validation`` and is stored in normalised form, so demo rows behave
exactly like rows entered through the forms, the API or an import. E-mail addresses use the
reserved ``example.com`` domain so nothing can ever be mailed to a real company.

Codes are left empty on purpose: the ``before_flush`` hook in ``app.services.customers`` numbers
new records like any other save. Nothing here commits; the caller owns the transaction.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import clock
from app.models.customers import Customer, FollowUp
from app.models.sales import Competitor, Contact, Lead, Opportunity, OpportunityLine, Product
from app.services.validation import credit_code_check_char, normalize_phone

Pair = tuple[str, str]  # (Chinese, English)


@dataclass(frozen=True)
class City:
    zh: str
    en: str
    area: str  # landline area code, e.g. 0755
    region: str  # administrative division code, characters 3-8 of a credit code
    districts: tuple[Pair, ...]


@dataclass(frozen=True)
class Profile:
    name: str
    contact: str
    email: str
    address: str
    chinese: bool


CITIES = (
    City("深圳市", "Shenzhen", "0755", "440300",
         (("南山区", "Nanshan District"), ("福田区", "Futian District"), ("宝安区", "Bao'an District"))),
    City("上海市", "Shanghai", "021", "310000",
         (("浦东新区", "Pudong New Area"), ("闵行区", "Minhang District"))),
    City("北京市", "Beijing", "010", "110000",
         (("海淀区", "Haidian District"), ("朝阳区", "Chaoyang District"))),
    City("杭州市", "Hangzhou", "0571", "330100",
         (("西湖区", "Xihu District"), ("滨江区", "Binjiang District"))),
    City("广州市", "Guangzhou", "020", "440100",
         (("天河区", "Tianhe District"), ("番禺区", "Panyu District"))),
    City("苏州市", "Suzhou", "0512", "320500",
         (("工业园区", "Industrial Park"), ("吴中区", "Wuzhong District"))),
    City("成都市", "Chengdu", "028", "510100",
         (("高新区", "Hi-tech Zone"), ("武侯区", "Wuhou District"))),
    City("武汉市", "Wuhan", "027", "420100",
         (("江汉区", "Jianghan District"), ("洪山区", "Hongshan District"))),
    City("南京市", "Nanjing", "025", "320100",
         (("江宁区", "Jiangning District"), ("鼓楼区", "Gulou District"))),
    City("宁波市", "Ningbo", "0574", "330200",
         (("鄞州区", "Yinzhou District"), ("北仑区", "Beilun District"))),
    City("东莞市", "Dongguan", "0769", "441900",
         (("松山湖", "Songshan Lake"), ("长安镇", "Chang'an Town"))),
    City("厦门市", "Xiamen", "0592", "350200",
         (("思明区", "Siming District"), ("湖里区", "Huli District"))),
    City("青岛市", "Qingdao", "0532", "370200",
         (("崂山区", "Laoshan District"), ("黄岛区", "Huangdao District"))),
    City("天津市", "Tianjin", "022", "120000",
         (("滨海新区", "Binhai New Area"), ("南开区", "Nankai District"))),
)
ROADS: tuple[Pair, ...] = (
    ("科技园路", "Keyuan Road"), ("人民路", "Renmin Road"), ("中山大道", "Zhongshan Avenue"),
    ("建设路", "Jianshe Road"), ("创业路", "Chuangye Road"), ("滨海大道", "Binhai Avenue"),
    ("高新南路", "Gaoxin South Road"), ("长江路", "Changjiang Road"),
)

#: Two-character brands with their pinyin (for e-mail domains).
BRANDS: tuple[Pair, ...] = (
    ("华腾", "huateng"), ("博远", "boyuan"), ("云启", "yunqi"), ("恒信", "hengxin"), ("金桥", "jinqiao"),
    ("卓越", "zhuoyue"), ("瑞丰", "ruifeng"), ("天成", "tiancheng"), ("鼎盛", "dingsheng"),
    ("锐捷", "ruijie"), ("新航", "xinhang"), ("汇通", "huitong"), ("中科", "zhongke"), ("盛达", "shengda"),
    ("宏图", "hongtu"), ("蓝海", "lanhai"), ("星辰", "xingchen"), ("嘉禾", "jiahe"), ("远景", "yuanjing"),
    ("智源", "zhiyuan"), ("安泰", "antai"), ("华信", "huaxin"), ("国泰", "guotai"), ("永利", "yongli"),
)
EN_BRANDS = (
    "Northwind", "Bluepeak", "Silverline", "Redwood", "Harbor", "Summit", "Evergreen", "Brightstar",
    "Ironbridge", "Oakridge", "Crescent", "Pinnacle", "Westgate", "Clearwater", "Stonefield", "Lakeshore",
    "Highland", "Meridian", "Sunridge", "Goldcrest",
)
#: Trade words by GB/T 4754 division code (the industry seed, ``app.services.industries_gbt4754``).
TRADES: dict[str, tuple[Pair, ...]] = {
    "36": (("汽车零部件", "Automotive Parts"), ("汽车配件", "Auto Components")),
    "39": (("电子科技", "Electronics"), ("光电科技", "Optoelectronics"), ("半导体", "Semiconductor")),
    "34": (
        ("机械设备", "Machinery"), ("精密制造", "Precision Engineering"), ("自动化设备", "Automation"),
    ),
    "65": (("软件", "Software"), ("信息技术", "Information Technology")),
    "64": (("网络科技", "Digital"), ("互联网科技", "Internet Services")),
    "51": (("贸易", "Trading"), ("商贸", "Wholesale")),
    "52": (("电子商务", "E-commerce"), ("供应链管理", "Supply Chain")),
    "58": (("物流", "Logistics"), ("国际货运代理", "Freight")),
    "66": (("融资租赁", "Leasing"),),
    "67": (("投资管理", "Capital"),),
}
GENERIC_TRADES: tuple[Pair, ...] = (
    ("科技", "Technology"), ("实业", "Industries"), ("贸易", "Trading"), ("电子科技", "Electronics"),
)
ZH_SUFFIXES = ("有限公司", "有限公司", "有限公司", "股份有限公司")
EN_SUFFIXES = ("Co., Ltd.", "Co., Ltd.", "Ltd.", "Limited", "Inc.", "Group Co., Ltd.")

SURNAMES: tuple[Pair, ...] = (
    ("王", "wang"), ("李", "li"), ("张", "zhang"), ("刘", "liu"), ("陈", "chen"), ("杨", "yang"),
    ("黄", "huang"), ("赵", "zhao"), ("吴", "wu"), ("周", "zhou"), ("徐", "xu"), ("孙", "sun"),
    ("马", "ma"), ("朱", "zhu"), ("胡", "hu"), ("郭", "guo"), ("何", "he"), ("林", "lin"), ("高", "gao"),
)
GIVEN_NAMES: tuple[Pair, ...] = (
    ("伟", "wei"), ("芳", "fang"), ("娜", "na"), ("敏", "min"), ("静", "jing"), ("磊", "lei"), ("洋", "yang"),
    ("勇", "yong"), ("杰", "jie"), ("娟", "juan"), ("涛", "tao"), ("明", "ming"), ("超", "chao"),
    ("秀英", "xiuying"), ("建华", "jianhua"), ("志强", "zhiqiang"), ("丽华", "lihua"), ("俊杰", "junjie"),
    ("晓东", "xiaodong"), ("雪梅", "xuemei"), ("海燕", "haiyan"), ("文斌", "wenbin"),
)
EN_FIRST = ("Emma", "James", "Olivia", "Liam", "Sophia", "Noah", "Grace", "Daniel", "Chloe", "Michael",
            "Hannah", "David", "Lucy", "Thomas", "Sarah", "Peter")
EN_LAST = ("Clark", "Wood", "Hart", "Scott", "Miller", "Reed", "Turner", "Walker", "Evans", "Bennett",
           "Fischer", "Dubois", "Jensen", "Morgan", "Hughes", "Novak")

MOBILE_PREFIXES = ("130", "131", "133", "135", "136", "137", "138", "139", "150", "151", "152", "155", "158",
                   "159", "166", "176", "177", "180", "181", "186", "187", "188", "189", "191", "198", "199")
CREDIT_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
TYPE_WEIGHTS = {"potential": 6, "won": 3, "lost": 1}

ZH_NOTES = (
    "广交会上接触，对华东区域代理感兴趣。", "老客户转介绍，决策人为采购总监。",
    "年采购预算约200万元，明年一季度招标。", "需开具增值税专用发票。", "对价格敏感，关注账期。",
    "已签保密协议，技术对接人为研发部经理。",
)
EN_NOTES = (
    "Met at the Canton Fair; interested in regional distribution.",
    "Referred by an existing customer; the purchasing director decides.",
    "Annual budget around USD 300k; tender expected in Q1.",
    "Prefers e-mail; English-speaking contact.", "Price sensitive, asks for 60-day payment terms.",
)
ZH_CONTENT = (
    "与{contact}电话沟通，客户关注交期和售后响应时间。",
    "上门拜访{contact}，演示了产品方案，对方技术负责人参与。",
    "已发送报价单及产品资料，{contact}表示下周内部评审。",
    "客户反馈价格偏高，希望在批量采购上给予折扣。",
    "与{contact}确认样品测试结果，整体满意，提出两项改进意见。",
    "参加客户年度供应商大会，初步了解明年采购计划。",
    "微信沟通合同条款，付款方式仍需对方法务确认。",
    "客户暂无采购计划，约定下季度再联系。",
)
EN_CONTENT = (
    "Called {contact} to discuss delivery times and after-sales support.",
    "Visited {contact} on site and demoed the product; their engineering lead joined.",
    "Sent the quotation and brochures; {contact} will review them internally next week.",
    "Customer finds the price high and asks for a volume discount.",
    "Reviewed sample test results with {contact}: satisfied, two change requests.",
    "Video call on contract terms; payment terms are still with their legal team.",
    "No budget this quarter; agreed to follow up next quarter.",
    "Met {contact} at the trade show and collected requirements for the new line.",
)
ZH_NEXT = (
    "发送正式报价", "安排技术交流会", "回访确认需求", "寄送样品",
    "提交合同草案", "邀请参观工厂", "跟进付款进度",
)
EN_NEXT = ("Send formal quotation", "Arrange technical workshop", "Call back to confirm requirements",
           "Ship samples", "Send draft contract", "Invite to visit the factory", "Chase payment")


def _maybe(rng: random.Random, items: list | None) -> Any:
    return rng.choice(items) if items else None


def _trades(industry: Any) -> tuple[Pair, ...]:
    return TRADES.get(getattr(industry, "code", None) or "", GENERIC_TRADES)


def _customer_type(rng: random.Random, types: list | None) -> Any:
    """Weighted towards potential customers; unknown codes get the weight of "lost"."""
    if not types:
        return None
    return rng.choices(types, weights=[TYPE_WEIGHTS.get(t.code, 1) for t in types])[0]


def _phone(rng: random.Random, city: City) -> str:
    """A mainland mobile (3 in 4) or a landline in the customer's city, normalised."""
    if rng.random() < 0.75:
        raw = f"{rng.choice(MOBILE_PREFIXES)}{rng.randrange(10**8):08d}"
    else:
        raw = f"{city.area}-{rng.randint(2 * 10**7, 89_999_999)}"
    return normalize_phone(raw)


def _credit_code(rng: random.Random, city: City) -> str:
    """91 (company, registered with market regulation) + region + 9-char organisation code + check."""
    first17 = "91" + city.region + "".join(rng.choice(CREDIT_CHARS) for _ in range(9))
    return first17 + credit_code_check_char(first17)


def _chinese_profile(rng: random.Random, city: City, trade: Pair) -> Profile:
    brand, brand_py = rng.choice(BRANDS)
    (surname, surname_py), (given, given_py) = rng.choice(SURNAMES), rng.choice(GIVEN_NAMES)
    local = rng.choice([f"{surname_py}.{given_py}", f"{given_py}{surname_py}", "sales", "info"])
    district, _ = rng.choice(city.districts)
    road, _ = rng.choice(ROADS)
    address = f"{city.zh}{district}{road}{rng.randint(1, 999)}号"
    if rng.random() < 0.5:
        address += f"{rng.randint(1, 12)}栋{rng.randint(1, 30)}{rng.randint(1, 20):02d}室"
    return Profile(
        name=f"{city.zh}{brand}{trade[0]}{rng.choice(ZH_SUFFIXES)}",
        contact=surname + given,
        email=f"{local}@{brand_py}.example.com",
        address=address,
        chinese=True,
    )


def _english_profile(rng: random.Random, city: City, trade: Pair) -> Profile:
    brand = rng.choice(EN_BRANDS)
    first, last = rng.choice(EN_FIRST), rng.choice(EN_LAST)
    _, district = rng.choice(city.districts)
    _, road = rng.choice(ROADS)
    address = f"{rng.randint(1, 999)} {road}, {district}, {city.en}, China"
    if rng.random() < 0.5:
        address = f"Room {rng.randint(1, 30)}{rng.randint(1, 20):02d}, {address}"
    return Profile(
        name=f"{brand} {trade[1]} {rng.choice(EN_SUFFIXES)}",
        contact=f"{first} {last}",
        email=f"{first.lower()}.{last.lower()}@{brand.lower()}.example.com",
        address=address,
        chinese=False,
    )


def _profile(rng: random.Random, city: City, industry: Any, taken: set[str]) -> Profile:
    """About 2/3 Chinese companies; retries a few times to avoid duplicate names."""
    chinese = rng.random() < 2 / 3
    build = _chinese_profile if chinese else _english_profile
    profile = build(rng, city, rng.choice(_trades(industry)))
    for _ in range(8):
        if profile.name not in taken:
            break
        profile = build(rng, city, rng.choice(_trades(industry)))
    taken.add(profile.name)
    return profile


def _customer(
    rng: random.Random, owner: Any, dictionaries: dict[str, list], taken: set[str]
) -> tuple[Customer, bool]:
    """A new customer, and whether it is a Chinese company (its follow-ups are then in Chinese)."""
    city = rng.choice(CITIES)
    industry = _maybe(rng, dictionaries.get("industry"))
    profile = _profile(rng, city, industry, taken)
    customer = Customer(
        name=profile.name,
        contact_name=profile.contact,
        contact_phone=_phone(rng, city),
        credit_code=_credit_code(rng, city) if rng.random() < 0.5 else None,
        email=profile.email if rng.random() < 0.8 else None,
        address=profile.address if rng.random() < 0.9 else None,
        type=_customer_type(rng, dictionaries.get("type")),
        industry=industry,
        level=_maybe(rng, dictionaries.get("level")),
        source=_maybe(rng, dictionaries.get("source")),
        owner=owner,
        created_by_fk=owner.id,
        changed_by_fk=owner.id,
    )
    if rng.random() < 0.3:
        customer.note = rng.choice(ZH_NOTES if profile.chinese else EN_NOTES)
    return customer, profile.chinese


def _follow_up_times(rng: random.Random, n: int, now: datetime) -> list[datetime]:
    """``n`` working-hour moments within the last 120 days, oldest first, none in the future.

    ``now`` is aware, in the CRM's zone: the working hours are that zone's (aware results)."""
    times = []
    for _ in range(n):
        day = now.date() - timedelta(days=rng.randint(0, 119))
        moment = datetime.combine(day, time(rng.randint(9, 18), rng.randint(0, 59)), tzinfo=now.tzinfo)
        earlier = now - timedelta(minutes=rng.randint(5, 90))  # drawn always: same sequence any time of day
        times.append(min(moment, earlier))
    return sorted(times)


def _next_step(rng: random.Random, when: datetime, latest: bool, today: date) -> tuple[bool, date | None]:
    """Whether a follow-up names a next step, and its date.

    The latest follow-up usually has one, due between two weeks ago (overdue) and a month ahead;
    older ones sometimes kept theirs, a few days after they were written.
    """
    if latest:
        wanted, offset = rng.random() < 0.8, rng.randint(-14, 30)
        return wanted, max(today + timedelta(days=offset), when.date() + timedelta(days=1))
    wanted, dated = rng.random() < 0.4, rng.random() < 0.3
    return wanted, when.date() + timedelta(days=rng.randint(2, 10)) if dated else None


def _follow_ups(
    rng: random.Random, customer: Customer, methods: list | None, chinese: bool
) -> list[FollowUp]:
    """1-4 follow-ups by the customer's owner, in the customer's language, oldest first."""
    contents, steps = (ZH_CONTENT, ZH_NEXT) if chinese else (EN_CONTENT, EN_NEXT)
    owner_id = customer.owner.id
    now = clock.local_now()  # working hours and "today" are the CRM zone's
    times = _follow_up_times(rng, rng.randint(1, 4), now)
    items = []
    for i, when in enumerate(times):
        wanted, next_date = _next_step(rng, when, i == len(times) - 1, now.date())
        next_step = rng.choice(steps)  # drawn always, so the sequence does not depend on the branch
        items.append(FollowUp(
            customer=customer, followed_at=when, method=_maybe(rng, methods),
            content=rng.choice(contents).format(contact=customer.contact_name),
            next_step=next_step if wanted else None, next_step_date=next_date if wanted else None,
            owner=customer.owner, created_by_fk=owner_id, changed_by_fk=owner_id,
        ))
    return items


def build_demo_customers(
    session: Session, owners: list, dictionaries: dict[str, list], count: int = 300, seed: int = 7
) -> int:
    """Add ``count`` customers with 1-4 follow-ups each, spread over ``owners``; flush, no commit.

    ``dictionaries`` maps "type", "industry", "level", "source" and "method" to the active
    entries to pick from (a missing or empty list leaves that field empty).
    """
    if not owners:
        raise ValueError("build_demo_customers needs at least one owner")
    rng = random.Random(seed)
    taken: set[str] = set()
    for _ in range(count):
        customer, chinese = _customer(rng, rng.choice(owners), dictionaries, taken)
        follow_ups = _follow_ups(rng, customer, dictionaries.get("method"), chinese)
        # entered two days before its first follow-up: the dashboards' monthly trend has a history
        customer.created_on = clock.as_utc(min(item.followed_at for item in follow_ups)) - timedelta(days=2)
        session.add(customer)
        session.add_all(follow_ups)
    session.flush()
    return count


# --- the sales pipeline (issue 13): products, contacts, leads, opportunities ----------------

#: (Chinese name, English name, unit, list price in yuan): what the demo companies sell.
PRODUCTS = (
    ("云服务器 标准版", "Cloud server, standard", "台/年", "6800.00"),
    ("云服务器 高配版", "Cloud server, high-performance", "台/年", "15800.00"),
    ("ERP 软件许可", "ERP licence", "用户", "2400.00"),
    ("CRM 软件许可", "CRM licence", "用户", "1200.00"),
    ("实施服务", "Implementation service", "人天", "3000.00"),
    ("驻场运维", "On-site operations", "人月", "28000.00"),
    ("工业网关", "Industrial gateway", "台", "4500.00"),
    ("传感器套件", "Sensor kit", "套", "860.00"),
    ("数据分析平台", "Analytics platform", "套", "98000.00"),
    ("培训课程", "Training course", "人次", "1500.00"),
)
#: Province of each demo city (leads carry a province and a city, as assignment rules match them).
PROVINCES = {
    "深圳市": "广东省", "广州市": "广东省", "东莞市": "广东省", "上海市": "上海市", "北京市": "北京市",
    "杭州市": "浙江省", "宁波市": "浙江省", "苏州市": "江苏省", "南京市": "江苏省", "成都市": "四川省",
    "武汉市": "湖北省", "厦门市": "福建省", "青岛市": "山东省", "天津市": "天津市",
}
#: Lead statuses with their weights (app.services.leads: new → contacted → qualified | invalid).
LEAD_STATUSES = {"new": 40, "contacted": 30, "qualified": 15, "invalid": 15}
INVALID_REASONS = ("号码错误，无法联系", "同行咨询，非真实需求", "预算不足，暂无采购计划", "重复线索", "Wrong number")
#: Stage code -> weight of the demo's open pipeline (seeded stages, migration a4c6e8f0b2d5).
STAGE_WEIGHTS = {"contact": 20, "needs": 20, "proposal": 20, "negotiation": 15, "won": 15, "lost": 10}
LOST_REASONS = ("价格高于竞品", "客户预算取消", "选择了现有供应商", "Lost to a competitor on delivery time")
COMPETITORS = (
    ("金蝶", "本地服务网点多，价格灵活", "定制开发能力弱"),
    ("用友", "品牌知名度高，财务模块成熟", "实施周期长，报价偏高"),
    ("SAP", "国际化能力强", "价格高，中小企业负担重"),
    ("Salesforce", "Strong ecosystem", "Expensive; data stored abroad"),
    ("华为云", "基础设施完善", "行业方案需集成商"),
)
TITLES = ("采购经理", "技术总监", "财务总监", "总经理", "IT 经理", "Purchasing Manager", "CTO")
DEMANDS = ("替换现有系统，要求三个月内上线。", "新建工厂的数据采集与监控。", "销售团队 50 人的客户管理。",
           "Replace spreadsheets with a shared system for 30 users.")


def build_demo_products(session: Session) -> list[Any]:
    """The ten demo products (codes S + date + sequence on flush); flush, no commit."""
    items = [Product(name=zh if i % 3 else f"{zh} / {en}", unit=unit, list_price=Decimal(price), active=i != 9)
             for i, (zh, en, unit, price) in enumerate(PRODUCTS)]
    session.add_all(items)
    session.flush()
    return items


def build_demo_contacts(session: Session, customers: list[Customer], seed: int = 11) -> int:
    """1-3 contacts per customer: the primary one is the customer's own contact (code ``P`` +
    the customer's code, as the migration makes them), the others decision makers or not.
    Customers that already have a primary contact (a hook made it) keep it. Flush, no commit."""
    rng = random.Random(seed)
    have = set(session.scalars(select(Contact.customer_id).where(Contact.is_primary.is_(True))))
    made = 0
    for customer in customers:
        extra = rng.choices((0, 1, 2), weights=(5, 3, 2))[0]
        people = [] if customer.id in have else [Contact(
            code=f"P{customer.code}", customer_id=customer.id, name=customer.contact_name or customer.name[:64],
            phone=customer.contact_phone, email=customer.email, is_primary=True,
            is_decision_maker=rng.random() < 0.5)]
        for _ in range(extra):
            city = rng.choice(CITIES)
            (surname, _), (given, given_py) = rng.choice(SURNAMES), rng.choice(GIVEN_NAMES)
            people.append(Contact(customer_id=customer.id, name=surname + given, title=rng.choice(TITLES),
                                  phone=_phone(rng, city), is_decision_maker=rng.random() < 0.3,
                                  email=f"{given_py}@example.com" if rng.random() < 0.5 else None,
                                  birthday=date(rng.randint(1965, 1998), rng.randint(1, 12), rng.randint(1, 28))
                                  if rng.random() < 0.4 else None))
        for person in people:
            person.created_by_fk = person.changed_by_fk = customer.owner_id
        session.add_all(people)
        made += len(people)
    session.flush()
    return made


def build_demo_leads(session: Session, owners: list, dictionaries: dict[str, list], count: int = 200,
                     seed: int = 13) -> int:
    """``count`` leads spread over ``owners`` (about one in ten unassigned), statuses mixed as
    ``LEAD_STATUSES`` (an invalid one with its reason), sources and industries from the
    dictionaries; the status history comes from the leads module's flush hook. Flush, no commit."""
    rng = random.Random(seed)
    taken: set[str] = set()
    statuses, weights = list(LEAD_STATUSES), list(LEAD_STATUSES.values())
    leads = []
    for _ in range(count):
        city = rng.choice(CITIES)
        industry = _maybe(rng, dictionaries.get("industry"))
        profile = _profile(rng, city, industry, taken)
        status = rng.choices(statuses, weights=weights)[0]
        owner = rng.choice(owners) if rng.random() >= 0.1 else None
        leads.append(Lead(
            company=profile.name, contact_name=profile.contact, phone=_phone(rng, city),
            email=profile.email if rng.random() < 0.6 else None, province=PROVINCES.get(city.zh), city=city.zh,
            industry_id=getattr(industry, "id", None), source_id=getattr(_maybe(rng, dictionaries.get("source")), "id", None),
            owner_id=getattr(owner, "id", None), status=status,
            invalid_reason=rng.choice(INVALID_REASONS) if status == "invalid" else None,
            note=rng.choice(ZH_NOTES if profile.chinese else EN_NOTES) if rng.random() < 0.3 else None,
            created_by_fk=getattr(owner, "id", None), changed_by_fk=getattr(owner, "id", None),
        ))
    session.add_all(leads)
    session.flush()
    return count


def build_demo_opportunities(session: Session, customers: list[Customer], products: list[Any],
                             stages: dict[str, Any], count: int = 300, seed: int = 17) -> int:
    """``count`` opportunities on the demo customers (their owner's), over the seeded stages
    (``STAGE_WEIGHTS``) with what each stage requires filled in; open ones close within the
    next six months, a few sit in 方案提交 untouched for 8-20 days (stale), won/lost ones
    closed in the last three months (lost with a reason); about a third carry product lines
    (amount = their sum), a quarter competitors. Flush, no commit."""
    rng = random.Random(seed)
    codes = [code for code in STAGE_WEIGHTS if code in stages]
    if not codes or not customers:
        return 0
    weights = [STAGE_WEIGHTS[code] for code in codes]
    today, now = clock.local_today(), clock.utc_now()
    sellable = [p for p in products if p.active and p.list_price]
    items = []
    for i in range(count):
        customer = rng.choice(customers)
        code = rng.choices(codes, weights=weights)[0]
        stage = stages[code]
        closed = stage.is_won or stage.is_lost
        quantity = Decimal(rng.choice((1, 2, 5, 10, 20, 50)))
        unit_price = Decimal(rng.randrange(2_000, 200_000, 100))
        item = Opportunity(
            customer_id=customer.id, owner_id=customer.owner_id, stage_id=stage.id,
            title=f"{customer.name[:40]} {rng.choice(('年度采购', '系统升级', '新项目', 'Expansion'))}",
            unit_price=unit_price, quantity=quantity, amount=unit_price * quantity,
            expected_close=today + timedelta(days=rng.randint(-90, -1) if closed else rng.randint(7, 180)),
            demand=rng.choice(DEMANDS) if code != "contact" else None,
            proposal_version=f"V{rng.randint(1, 3)}.{rng.randint(0, 9)}" if code not in ("contact", "needs") else None,
            lost_reason=rng.choice(LOST_REASONS) if stage.is_lost else None,
            probability_override=rng.choice((None, None, None, 60, 70)) if code == "negotiation" else None,
            created_by_fk=customer.owner_id, changed_by_fk=customer.owner_id,
        )
        age = rng.randint(0, 20)
        if code == "proposal" and i % 6 == 0:  # stale: 003's "方案提交 超7天未更新"
            age = rng.randint(8, 20)
            item.changed_on = now - timedelta(days=age)
        item.stage_entered_at = now - timedelta(days=age)
        if sellable and rng.random() < 0.35:
            item.lines = _demo_lines(rng, sellable)
            item.amount = sum((line.amount for line in item.lines), Decimal(0))
            item.unit_price = item.quantity = None
        if rng.random() < 0.25:
            item.competitors = [Competitor(name=name, strengths=good, weaknesses=bad)
                                for name, good, bad in rng.sample(COMPETITORS, rng.randint(1, 2))]
        items.append(item)
    session.add_all(items)
    session.flush()
    return count


def _demo_lines(rng: random.Random, products: list[Any]) -> list[Any]:
    lines = []
    for position, product in enumerate(rng.sample(products, rng.randint(1, min(3, len(products))))):
        quantity = Decimal(rng.choice((1, 2, 5, 10, 30)))
        discount = Decimal(rng.choice((0, 0, 5, 10, 15)))
        amount = (quantity * product.list_price * (100 - discount) / 100).quantize(Decimal("0.01"))
        lines.append(OpportunityLine(position=position, product_id=product.id, quantity=quantity,
                                     unit_price=product.list_price, discount=discount, amount=amount))
    return lines
