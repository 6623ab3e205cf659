"""The industry dictionary of GB/T 4754-2017 国民经济行业分类, and the aliases people type.

Sections (门类, code ``A``–``T``) are the top level, divisions (大类, two-digit code
``01``–``97``) their children. Chinese names are the standard's; English names follow the
National Bureau of Statistics' English version where it has one, else a faithful
translation. Plain data only: the setup (``app.services.setup.seed_dictionaries``) and the
migration ``5b7d2c9e4a10`` (existing databases) both read it, so keep it free of imports
from the app.

``ALIASES`` maps a code to what people write for it in workbooks and forms (the manual's
own template row says 信息技术 / 重要 / 官网表单). An alias names one entry of its
dictionary only; ``DictionaryLookup`` matches aliases like codes and labels.
"""

from __future__ import annotations

#: (section code, Chinese, English, [(division code, Chinese, English), ...])
SECTIONS: list[tuple[str, str, str, list[tuple[str, str, str]]]] = [
    ("A", "农、林、牧、渔业", "Agriculture, Forestry, Animal Husbandry and Fishery", [
        ("01", "农业", "Agriculture"),
        ("02", "林业", "Forestry"),
        ("03", "畜牧业", "Animal Husbandry"),
        ("04", "渔业", "Fishery"),
        ("05", "农、林、牧、渔专业及辅助性活动",
         "Professional and Support Activities for Agriculture, Forestry, Animal Husbandry and Fishery"),
    ]),
    ("B", "采矿业", "Mining", [
        ("06", "煤炭开采和洗选业", "Mining and Washing of Coal"),
        ("07", "石油和天然气开采业", "Extraction of Petroleum and Natural Gas"),
        ("08", "黑色金属矿采选业", "Mining and Processing of Ferrous Metal Ores"),
        ("09", "有色金属矿采选业", "Mining and Processing of Non-ferrous Metal Ores"),
        ("10", "非金属矿采选业", "Mining and Processing of Non-metal Ores"),
        ("11", "开采专业及辅助性活动", "Professional and Support Activities for Mining"),
        ("12", "其他采矿业", "Other Mining"),
    ]),
    ("C", "制造业", "Manufacturing", [
        ("13", "农副食品加工业", "Processing of Food from Agricultural Products"),
        ("14", "食品制造业", "Manufacture of Foods"),
        ("15", "酒、饮料和精制茶制造业", "Manufacture of Liquor, Beverages and Refined Tea"),
        ("16", "烟草制品业", "Manufacture of Tobacco"),
        ("17", "纺织业", "Manufacture of Textiles"),
        ("18", "纺织服装、服饰业", "Manufacture of Textile Wearing Apparel and Accessories"),
        ("19", "皮革、毛皮、羽毛及其制品和制鞋业",
         "Manufacture of Leather, Fur, Feather and Related Products and Footwear"),
        ("20", "木材加工和木、竹、藤、棕、草制品业",
         "Processing of Timber, Manufacture of Wood, Bamboo, Rattan, Palm and Straw Products"),
        ("21", "家具制造业", "Manufacture of Furniture"),
        ("22", "造纸和纸制品业", "Manufacture of Paper and Paper Products"),
        ("23", "印刷和记录媒介复制业", "Printing and Reproduction of Recording Media"),
        ("24", "文教、工美、体育和娱乐用品制造业",
         "Manufacture of Articles for Culture, Education, Arts and Crafts, Sport and Entertainment"),
        ("25", "石油、煤炭及其他燃料加工业", "Processing of Petroleum, Coal and Other Fuels"),
        ("26", "化学原料和化学制品制造业", "Manufacture of Raw Chemical Materials and Chemical Products"),
        ("27", "医药制造业", "Manufacture of Medicines"),
        ("28", "化学纤维制造业", "Manufacture of Chemical Fibers"),
        ("29", "橡胶和塑料制品业", "Manufacture of Rubber and Plastic Products"),
        ("30", "非金属矿物制品业", "Manufacture of Non-metallic Mineral Products"),
        ("31", "黑色金属冶炼和压延加工业", "Smelting and Pressing of Ferrous Metals"),
        ("32", "有色金属冶炼和压延加工业", "Smelting and Pressing of Non-ferrous Metals"),
        ("33", "金属制品业", "Manufacture of Metal Products"),
        ("34", "通用设备制造业", "Manufacture of General Purpose Machinery"),
        ("35", "专用设备制造业", "Manufacture of Special Purpose Machinery"),
        ("36", "汽车制造业", "Manufacture of Automobiles"),
        ("37", "铁路、船舶、航空航天和其他运输设备制造业",
         "Manufacture of Railway, Ship, Aerospace and Other Transport Equipment"),
        ("38", "电气机械和器材制造业", "Manufacture of Electrical Machinery and Apparatus"),
        ("39", "计算机、通信和其他电子设备制造业",
         "Manufacture of Computers, Communication and Other Electronic Equipment"),
        ("40", "仪器仪表制造业", "Manufacture of Measuring Instruments and Meters"),
        ("41", "其他制造业", "Other Manufacturing"),
        ("42", "废弃资源综合利用业", "Utilization of Waste Resources"),
        ("43", "金属制品、机械和设备修理业", "Repair of Metal Products, Machinery and Equipment"),
    ]),
    ("D", "电力、热力、燃气及水生产和供应业", "Production and Supply of Electricity, Heat, Gas and Water", [
        ("44", "电力、热力生产和供应业", "Production and Supply of Electric Power and Heat Power"),
        ("45", "燃气生产和供应业", "Production and Supply of Gas"),
        ("46", "水的生产和供应业", "Production and Supply of Water"),
    ]),
    ("E", "建筑业", "Construction", [
        ("47", "房屋建筑业", "Construction of Buildings"),
        ("48", "土木工程建筑业", "Civil Engineering"),
        ("49", "建筑安装业", "Construction Installation"),
        ("50", "建筑装饰、装修和其他建筑业", "Building Decoration, Renovation and Other Construction"),
    ]),
    ("F", "批发和零售业", "Wholesale and Retail Trades", [
        ("51", "批发业", "Wholesale Trade"),
        ("52", "零售业", "Retail Trade"),
    ]),
    ("G", "交通运输、仓储和邮政业", "Transport, Storage and Post", [
        ("53", "铁路运输业", "Rail Transport"),
        ("54", "道路运输业", "Road Transport"),
        ("55", "水上运输业", "Water Transport"),
        ("56", "航空运输业", "Air Transport"),
        ("57", "管道运输业", "Pipeline Transport"),
        ("58", "多式联运和运输代理业", "Multimodal Transport and Transport Agency"),
        ("59", "装卸搬运和仓储业", "Loading, Unloading and Storage"),
        ("60", "邮政业", "Postal Services"),
    ]),
    ("H", "住宿和餐饮业", "Accommodation and Catering", [
        ("61", "住宿业", "Accommodation"),
        ("62", "餐饮业", "Catering Services"),
    ]),
    ("I", "信息传输、软件和信息技术服务业", "Information Transmission, Software and Information Technology Services", [
        ("63", "电信、广播电视和卫星传输服务",
         "Telecommunications, Broadcasting, Television and Satellite Transmission Services"),
        ("64", "互联网和相关服务", "Internet and Related Services"),
        ("65", "软件和信息技术服务业", "Software and Information Technology Services"),
    ]),
    ("J", "金融业", "Finance", [
        ("66", "货币金融服务", "Monetary Financial Services"),
        ("67", "资本市场服务", "Capital Market Services"),
        ("68", "保险业", "Insurance"),
        ("69", "其他金融业", "Other Financial Services"),
    ]),
    ("K", "房地产业", "Real Estate", [
        ("70", "房地产业", "Real Estate"),
    ]),
    ("L", "租赁和商务服务业", "Leasing and Business Services", [
        ("71", "租赁业", "Leasing"),
        ("72", "商务服务业", "Business Services"),
    ]),
    ("M", "科学研究和技术服务业", "Scientific Research and Technical Services", [
        ("73", "研究和试验发展", "Research and Experimental Development"),
        ("74", "专业技术服务业", "Professional Technical Services"),
        ("75", "科技推广和应用服务业", "Technology Promotion and Application Services"),
    ]),
    ("N", "水利、环境和公共设施管理业", "Water Conservancy, Environment and Public Facilities Management", [
        ("76", "水利管理业", "Water Conservancy Management"),
        ("77", "生态保护和环境治理业", "Ecological Protection and Environmental Governance"),
        ("78", "公共设施管理业", "Public Facilities Management"),
        ("79", "土地管理业", "Land Management"),
    ]),
    ("O", "居民服务、修理和其他服务业", "Resident Services, Repair and Other Services", [
        ("80", "居民服务业", "Resident Services"),
        ("81", "机动车、电子产品和日用产品修理业", "Repair of Motor Vehicles, Electronic Products and Daily-use Products"),
        ("82", "其他服务业", "Other Services"),
    ]),
    ("P", "教育", "Education", [
        ("83", "教育", "Education"),
    ]),
    ("Q", "卫生和社会工作", "Health and Social Work", [
        ("84", "卫生", "Health"),
        ("85", "社会工作", "Social Work"),
    ]),
    ("R", "文化、体育和娱乐业", "Culture, Sports and Entertainment", [
        ("86", "新闻和出版业", "News and Publishing"),
        ("87", "广播、电视、电影和录音制作业", "Radio, Television, Film and Sound Recording Production"),
        ("88", "文化艺术业", "Culture and Arts"),
        ("89", "体育", "Sports"),
        ("90", "娱乐业", "Entertainment"),
    ]),
    ("S", "公共管理、社会保障和社会组织", "Public Management, Social Security and Social Organizations", [
        ("91", "中国共产党机关", "Organs of the Communist Party of China"),
        ("92", "国家机构", "State Organs"),
        ("93", "人民政协、民主党派", "CPPCC and Democratic Parties"),
        ("94", "社会保障", "Social Security"),
        ("95", "群众团体、社会团体和其他成员组织",
         "Mass Organizations, Social Organizations and Other Membership Organizations"),
        ("96", "基层群众自治组织及其他组织", "Grassroots Mass Self-governing Organizations and Other Organizations"),
    ]),
    ("T", "国际组织", "International Organizations", [
        ("97", "国际组织", "International Organizations"),
    ]),
]

#: Industry code -> what people write for it. Broad words name the section (信息技术, IT,
#: 制造), trade words the division (软件 -> 65, 互联网 -> 64, 医疗 -> 84 卫生).
INDUSTRY_ALIASES: dict[str, tuple[str, ...]] = {
    "A": ("农林牧渔", "农业林业"),
    "B": ("矿业", "采矿"),
    "C": ("制造", "工业", "生产制造"),
    "D": ("能源", "公用事业", "Energy", "Utilities"),
    "E": ("建筑", "建筑工程"),
    "F": ("批发零售", "商贸", "贸易", "Trade", "Trading"),
    "G": ("物流", "交通运输", "运输", "Logistics", "Transport", "Transportation"),
    "H": ("住宿餐饮", "酒店餐饮", "Hospitality"),
    "I": ("信息技术", "信息技術", "IT", "IT行业", "信息技术服务", "Information Technology", "IT services"),
    "J": ("金融", "金融服务", "Financial services", "Financial"),
    "L": ("商务服务",),
    "M": ("科研", "技术服务", "科技服务"),
    "N": ("环保", "公共设施"),
    "O": ("居民服务", "维修服务"),
    "Q": ("医疗健康", "医疗卫生"),
    "R": ("文化传媒", "文体娱乐", "传媒", "Media"),
    "S": ("公共管理", "政府", "Government", "Public sector"),
    "06": ("煤炭",),
    "13": ("农副食品",),
    "14": ("食品", "Food"),
    "15": ("饮料", "酒类", "Beverages"),
    "17": ("纺织", "Textiles"),
    "18": ("服装", "服饰", "Apparel", "Garments"),
    "21": ("家具", "Furniture"),
    "26": ("化工", "Chemicals"),
    "27": ("医药", "制药", "Pharmaceuticals"),
    "29": ("塑料", "橡胶"),
    "33": ("五金",),
    "34": ("机械设备", "机械", "Machinery"),
    "35": ("专用设备",),
    "36": ("汽车制造", "汽车", "汽车零部件", "Automotive", "Automobiles"),
    "38": ("电气设备", "电气"),
    "39": ("电子制造", "电子", "电子设备", "Electronics"),
    "40": ("仪器仪表",),
    "44": ("电力",),
    "45": ("燃气",),
    "46": ("水务",),
    "50": ("装修", "装饰", "装修装饰"),
    "51": ("批发", "Wholesale"),
    "52": ("零售", "电子商务", "电商", "E-commerce", "Retail", "超市", "商超"),
    "58": ("货运代理", "货代", "Freight forwarding"),
    "59": ("仓储", "Warehousing"),
    "60": ("快递", "邮政", "Express delivery"),
    "61": ("酒店", "Hotel", "Hotels"),
    "62": ("餐饮", "餐厅", "Restaurant", "Restaurants"),
    "63": ("电信", "通信服务", "Telecom", "Telecommunications"),
    "64": ("互联网", "互联网服务", "Internet", "Internet services"),
    "65": ("软件", "软件开发", "软件服务", "Software", "Software development"),
    "66": ("银行", "Banking", "Bank", "融资租赁"),
    "67": ("证券", "基金", "投资", "Securities", "Investment"),
    "68": ("保险",),
    "70": ("房地产", "地产", "Property"),
    "71": ("租赁",),
    "72": ("咨询", "广告", "人力资源", "Consulting", "Advertising"),
    "73": ("研发", "R&D"),
    "74": ("检测", "设计服务", "工程设计"),
    "77": ("环境治理", "环保工程"),
    "80": ("家政", "美容美发"),
    "81": ("维修",),
    "83": ("培训", "教育培训", "教培", "学校", "Training", "School"),
    "84": ("医疗", "医院", "医疗服务", "Healthcare", "Medical", "Hospital"),
    "85": ("养老",),
    "86": ("出版", "新闻"),
    "87": ("影视", "电影", "Film"),
    "90": ("娱乐",),
    "92": ("政府机关",),
    "95": ("协会", "商会", "社会团体"),
}

#: Aliases of the other dictionaries, by model name and code (the manual: 客户等级 重要/一般/潜在,
#: 信息来源 官网/展会/转介绍).
OTHER_ALIASES: dict[str, dict[str, tuple[str, ...]]] = {
    "CustomerLevel": {
        "A": ("重要", "重点", "VIP", "A级", "high", "重要客户"),
        "B": ("一般", "普通", "B级", "medium", "一般客户"),
        "C": ("潜在", "C级", "low"),
    },
    "CustomerSource": {
        "trade_show": ("展会", "展览会", "Exhibition", "Trade fair"),
        "online_ad": ("网络广告", "线上推广", "Online advertising"),
        "referral": ("转介绍", "介绍", "推荐", "Recommendation"),
        "website": ("官网", "官网表单", "官網", "官網表單", "网站", "官方网站", "Website"),
        "phone": ("来电", "电话", "Phone call"),
    },
    "CustomerType": {
        "potential": ("潜在", "潜客", "意向客户", "Prospect", "Lead"),
        "won": ("成交", "已成交", "签约", "Customer"),
        "lost": ("流失", "丢单", "Churned"),
    },
    "FollowUpMethod": {
        "phone": ("电话沟通", "打电话", "Call", "Phone call"),
        "visit": ("上门拜访", "上门", "面访", "拜访客户"),
        "email": ("电子邮件", "邮箱", "Email", "Mail"),
        "meeting": ("开会", "视频会议", "Video call"),
    },
}


def alias_text(aliases: tuple[str, ...] | list[str]) -> str | None:
    """The stored form: one alias a line (None for none)."""
    return "\n".join(aliases) or None
