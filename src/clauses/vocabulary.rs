//! The vocabulary itself: one entry per CUAD category, in CUAD's order. General legal
//! phrasing only: no contract names, no answers.

use super::{AnswerShape, ClauseType};

macro_rules! clause {
    ($name:expr, $answer:ident, [$($cue:expr),* $(,)?], [$($wording:expr),* $(,)?]) => {
        ClauseType {
            name: $name,
            cues: &[$($cue),*],
            wording: &[$($wording),*],
            answer: AnswerShape::$answer,
        }
    };
}

/// The vocabulary, in CUAD's order.
pub static CLAUSE_TYPES: &[ClauseType] = &[
    clause!(
        "Document Name",
        Name,
        [
            "name of this contract",
            "name of the contract",
            "title of",
            "what is this contract",
            "what kind of agreement",
            "called"
        ],
        ["agreement", "this agreement"]
    ),
    clause!(
        "Parties",
        Parties,
        [
            "parties",
            "party to the",
            "who signed",
            "who are the",
            "between whom"
        ],
        [
            "by and between",
            "entered into by",
            "between",
            "hereinafter",
            "collectively the parties"
        ]
    ),
    clause!(
        "Agreement Date",
        Date,
        [
            "agreement date",
            "date of the contract",
            "date of this contract",
            "when was",
            "dated",
            "signed on",
            "when was it signed"
        ],
        [
            "dated as of",
            "made and entered into as of",
            "entered into on",
            "this day of"
        ]
    ),
    clause!(
        "Effective Date",
        Date,
        [
            "effective date",
            "effective date of this contract",
            "effective date of the contract",
            "take effect",
            "takes effect",
            "become effective",
            "start date",
            "commencement date",
            "when does it start",
            "when does the contract start"
        ],
        [
            "effective as of",
            "effective date",
            "shall become effective",
            "commencement date",
            "shall commence on"
        ]
    ),
    clause!(
        "Expiration Date",
        Date,
        [
            "expiration",
            "expire",
            "expiry",
            "end date",
            "initial term",
            "when does it end",
            "how long does",
            "term of the contract",
            "term of this contract",
            "duration of the contract"
        ],
        [
            "initial term",
            "shall expire",
            "shall continue in full force and effect until",
            "term of this agreement",
            "remain in effect for a period of",
            "expiration date"
        ]
    ),
    clause!(
        "Renewal Term",
        Duration,
        [
            "renewal",
            "renew",
            "extension",
            "extend the term",
            "auto-renew",
            "automatically renew"
        ],
        [
            "automatically renew",
            "successive",
            "renewal term",
            "additional periods of",
            "shall be extended",
            "unless either party gives notice of non-renewal"
        ]
    ),
    clause!(
        "Notice Period To Terminate Renewal",
        NoticePeriod,
        [
            "notice period to terminate renewal",
            "terminate renewal",
            "non-renewal",
            "notice of non-renewal",
            "prevent renewal",
            "notice period required to terminate"
        ],
        [
            "written notice of non-renewal",
            "days prior to the expiration",
            "notice of its intention not to renew",
            "prior to the end of the then-current term",
            "days before the end of"
        ]
    ),
    clause!(
        "Governing Law",
        Jurisdiction,
        [
            "governing law",
            "which law",
            "what law",
            "law governs",
            "laws govern",
            "governs the",
            "governed by",
            "choice of law",
            "jurisdiction",
            "state/country",
            "applicable law"
        ],
        [
            "governed by",
            "construed in accordance with the laws of",
            "governing law",
            "laws of the state of",
            "choice of law",
            "without regard to conflicts of law",
            "without giving effect to its conflict of laws"
        ]
    ),
    clause!(
        "Most Favored Nation",
        YesNo,
        [
            "most favored",
            "most favoured",
            "better terms",
            "mfn",
            "best price"
        ],
        [
            "most favored",
            "most favoured",
            "no less favorable",
            "more favorable terms",
            "lowest price",
            "better terms than"
        ]
    ),
    clause!(
        "Non-Compete",
        YesNo,
        [
            "non-compete",
            "noncompete",
            "compete",
            "competing",
            "competition"
        ],
        [
            "shall not compete",
            "not engage in any business",
            "competing products",
            "non-competition",
            "directly or indirectly compete",
            "competitive business"
        ]
    ),
    clause!(
        "Exclusivity",
        YesNo,
        ["exclusiv", "sole supplier", "only supplier", "requirements"],
        [
            "exclusive",
            "exclusively",
            "sole and exclusive",
            "shall not appoint any other",
            "shall purchase all of its requirements"
        ]
    ),
    clause!(
        "No-Solicit Of Customers",
        YesNo,
        [
            "solicit customers",
            "soliciting customers",
            "no-solicit of customers",
            "poach customers",
            "solicitation of customers"
        ],
        [
            "shall not solicit",
            "solicit any customer",
            "induce any customer",
            "solicit or accept business from"
        ]
    ),
    clause!(
        "Competitive Restriction Exception",
        YesNo,
        [
            "exception to the non-compete",
            "carve-out",
            "carveout",
            "exceptions to exclusivity",
            "competitive restriction exception"
        ],
        [
            "notwithstanding the foregoing",
            "shall not apply to",
            "except as otherwise provided",
            "nothing in this section shall prevent"
        ]
    ),
    clause!(
        "No-Solicit Of Employees",
        YesNo,
        [
            "solicit employees",
            "hire employees",
            "hiring employees",
            "no-solicit of employees",
            "poach employees",
            "non-solicitation of employees"
        ],
        [
            "solicit for employment",
            "employ or solicit",
            "hire any employee",
            "induce any employee to leave",
            "solicit or hire"
        ]
    ),
    clause!(
        "Non-Disparagement",
        YesNo,
        ["disparage", "disparagement", "negative statements"],
        [
            "disparage",
            "disparaging",
            "derogatory statements",
            "shall not make any statement"
        ]
    ),
    clause!(
        "Termination For Convenience",
        YesNo,
        [
            "terminate for convenience",
            "terminate without cause",
            "termination for convenience",
            "terminate at any time",
            "terminate at will",
            "without cause"
        ],
        [
            "terminate this agreement for convenience",
            "for any reason or no reason",
            "without cause upon",
            "at any time upon",
            "days prior written notice to the other party"
        ]
    ),
    clause!(
        "Rofr/Rofo/Rofn",
        YesNo,
        [
            "right of first refusal",
            "right of first offer",
            "right of first negotiation",
            "rofr",
            "rofo",
            "rofn",
            "first refusal"
        ],
        [
            "right of first refusal",
            "right of first offer",
            "right of first negotiation",
            "first right to",
            "shall first offer"
        ]
    ),
    clause!(
        "Change Of Control",
        YesNo,
        [
            "change of control",
            "change in control",
            "merger",
            "acquisition",
            "acquired",
            "sale of the company"
        ],
        [
            "change of control",
            "change in control",
            "merger",
            "consolidation",
            "sale of all or substantially all",
            "acquires beneficial ownership",
            "controlling interest"
        ]
    ),
    clause!(
        "Anti-Assignment",
        YesNo,
        [
            "assign",
            "assignment",
            "transfer the contract",
            "transfer this agreement",
            "anti-assignment"
        ],
        [
            "may not assign",
            "shall not assign",
            "without the prior written consent",
            "assign or transfer",
            "any attempted assignment",
            "by operation of law"
        ]
    ),
    clause!(
        "Revenue/Profit Sharing",
        YesNo,
        [
            "revenue shar",
            "profit shar",
            "share revenue",
            "share profit",
            "royalt",
            "commission"
        ],
        [
            "royalty",
            "royalties",
            "revenue share",
            "percent of net sales",
            "profit share",
            "commission",
            "net revenue"
        ]
    ),
    clause!(
        "Price Restrictions",
        YesNo,
        [
            "price restriction",
            "raise prices",
            "price increase",
            "reduce prices",
            "price cap"
        ],
        [
            "shall not increase the price",
            "prices shall remain",
            "price increase",
            "adjust the prices",
            "fixed price"
        ]
    ),
    clause!(
        "Minimum Commitment",
        YesNo,
        [
            "minimum commitment",
            "minimum order",
            "minimum purchase",
            "minimum amount",
            "minimum quantity",
            "take or pay"
        ],
        [
            "minimum purchase",
            "minimum order",
            "minimum annual",
            "shall purchase at least",
            "minimum quantity",
            "shortfall"
        ]
    ),
    clause!(
        "Volume Restriction",
        YesNo,
        [
            "volume restriction",
            "usage limit",
            "exceeds",
            "threshold",
            "cap on usage"
        ],
        [
            "in excess of",
            "exceeds",
            "maximum number of",
            "additional fee",
            "volume"
        ]
    ),
    clause!(
        "Ip Ownership Assignment",
        YesNo,
        [
            "ip ownership",
            "intellectual property created",
            "owns the intellectual property",
            "who owns",
            "ownership of work product",
            "assignment of intellectual property"
        ],
        [
            "hereby assigns",
            "shall be the sole and exclusive property",
            "all right, title and interest",
            "work made for hire",
            "shall own all"
        ]
    ),
    clause!(
        "Joint Ip Ownership",
        YesNo,
        [
            "joint ownership",
            "jointly owned",
            "joint ip",
            "shared ownership",
            "co-own"
        ],
        [
            "jointly owned",
            "joint ownership",
            "owned jointly",
            "co-owned",
            "undivided interest"
        ]
    ),
    clause!(
        "License Grant",
        YesNo,
        [
            "license grant",
            "licence grant",
            "grant a license",
            "licensed",
            "license"
        ],
        [
            "hereby grants",
            "grants to",
            "license to use",
            "non-exclusive license",
            "exclusive license",
            "right and license"
        ]
    ),
    clause!(
        "Non-Transferable License",
        YesNo,
        [
            "non-transferable",
            "nontransferable",
            "transfer the license",
            "sublicense"
        ],
        [
            "non-transferable",
            "non-assignable",
            "non-sublicensable",
            "without the right to sublicense",
            "may not transfer"
        ]
    ),
    clause!(
        "Affiliate License-Licensor",
        YesNo,
        [
            "affiliates of the licensor",
            "licensor's affiliates",
            "affiliate license-licensor"
        ],
        [
            "licensor and its affiliates",
            "on behalf of its affiliates",
            "affiliates of licensor"
        ]
    ),
    clause!(
        "Affiliate License-Licensee",
        YesNo,
        [
            "affiliates of the licensee",
            "licensee's affiliates",
            "affiliate license-licensee",
            "licensee and its affiliates",
            "affiliates of such licensee",
            "affiliates of a licensee"
        ],
        [
            "licensee and its affiliates",
            "to licensee and its affiliates",
            "affiliates of licensee",
            "its affiliates and sublicensees"
        ]
    ),
    clause!(
        "Unlimited/All-You-Can-Eat-License",
        YesNo,
        [
            "unlimited",
            "all you can eat",
            "all-you-can-eat",
            "enterprise license",
            "unlimited usage"
        ],
        [
            "unlimited",
            "enterprise-wide",
            "unlimited number of",
            "without limitation as to the number"
        ]
    ),
    clause!(
        "Irrevocable Or Perpetual License",
        YesNo,
        [
            "irrevocable",
            "perpetual",
            "forever",
            "irrevocable or perpetual",
            "perpetual license",
            "perpetual licence",
            "irrevocable license",
            "irrevocable licence"
        ],
        ["irrevocable", "perpetual", "in perpetuity", "fully paid-up"]
    ),
    clause!(
        "Source Code Escrow",
        YesNo,
        ["source code escrow", "escrow", "source code"],
        [
            "source code",
            "escrow agent",
            "escrow agreement",
            "deposit",
            "release condition"
        ]
    ),
    clause!(
        "Post-Termination Services",
        YesNo,
        [
            "post-termination",
            "after termination",
            "wind-down",
            "transition services",
            "survive",
            "upon termination"
        ],
        [
            "upon termination",
            "following termination",
            "after the expiration or termination",
            "shall survive",
            "transition period",
            "wind down",
            "sell off"
        ]
    ),
    clause!(
        "Audit Rights",
        YesNo,
        [
            "audit",
            "inspect",
            "inspection",
            "books and records",
            "examine the records"
        ],
        [
            "audit",
            "inspect",
            "books and records",
            "examine",
            "accurate records",
            "independent accountant"
        ]
    ),
    clause!(
        "Uncapped Liability",
        YesNo,
        [
            "uncapped",
            "unlimited liability",
            "liability is not limited",
            "exceptions to the limitation of liability"
        ],
        [
            "shall not apply to",
            "gross negligence",
            "willful misconduct",
            "indemnification obligations",
            "breach of confidentiality",
            "exclusions"
        ]
    ),
    clause!(
        "Cap On Liability",
        YesNo,
        [
            "cap on liability",
            "liability cap",
            "limitation of liability",
            "limit of liability",
            "limit its liability",
            "maximum liability",
            "liable for",
            "liability limited"
        ],
        [
            "in no event shall",
            "aggregate liability",
            "shall not exceed",
            "limitation of liability",
            "liable for any indirect",
            "consequential damages",
            "total liability"
        ]
    ),
    clause!(
        "Liquidated Damages",
        YesNo,
        [
            "liquidated damages",
            "termination fee",
            "break fee",
            "penalty"
        ],
        [
            "liquidated damages",
            "termination fee",
            "as a penalty",
            "shall pay an amount equal to"
        ]
    ),
    clause!(
        "Warranty Duration",
        Duration,
        [
            "warranty duration",
            "warranty period",
            "how long is the warranty",
            "warranty last",
            "warranted for",
            "duration of any warranty",
            "how long does the warranty"
        ],
        [
            "warrants",
            "warranty period",
            "for a period of",
            "from the date of delivery",
            "free from defects"
        ]
    ),
    clause!(
        "Insurance",
        YesNo,
        ["insurance", "insured", "coverage", "policy"],
        [
            "insurance",
            "maintain insurance",
            "general liability insurance",
            "additional insured",
            "certificate of insurance",
            "coverage"
        ]
    ),
    clause!(
        "Covenant Not To Sue",
        YesNo,
        [
            "covenant not to sue",
            "not to sue",
            "contest the validity",
            "challenge the validity",
            "contesting the validity",
            "challenging the validity"
        ],
        [
            "shall not contest",
            "not to sue",
            "challenge the validity",
            "shall not bring any claim",
            "attack the title"
        ]
    ),
    clause!(
        "Third Party Beneficiary",
        YesNo,
        [
            "third party beneficiar",
            "third-party beneficiar",
            "non-contracting party",
            "enforce by a third party"
        ],
        [
            "third party beneficiary",
            "third-party beneficiaries",
            "no third party",
            "enforceable by",
            "intended beneficiaries"
        ]
    ),
];
