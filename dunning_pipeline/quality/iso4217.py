"""ISO 4217 currency codes accepted on invoices.

`CURRENT`: ISO 4217 list one (active codes, including fund codes and precious metals) as
published by the maintenance agency (SIX) in 2025. `WITHDRAWN`: codes withdrawn since the euro's
introduction (list three) that still sit on old, settled invoices of long-lived ledgers (HRK
until 2023, the euro's predecessors); accepting them keeps history out of quarantine.
Deliberately absent: XTS (reserved for tests) and XXX ("no currency"), which no real invoice
carries. A new code (such as XCG in 2025) must be added here, or its invoices are quarantined
and named in the check, which is how the change gets noticed.
"""

_CURRENT = """
AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BHD BIF BMD BND BOB BOV BRL BSD BTN BWP BYN BZD
CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP
GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR
KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN
MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD
SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX
USD USN UYI UYU UYW UZS VED VES VND VUV WST XAF XAG XAU XBA XBB XBC XBD XCD XCG XDR XOF XPD XPF
XPT XSU XUA YER ZAR ZMW ZWG
"""

_WITHDRAWN = """
ANG ATS AZM BEF BYR CSD CUC CYP DEM EEK ESP FIM FRF GHC GRD HRK IEP ITL LTL LUF LVL MGF MRO MTL
MZM NLG PTE ROL SDD SIT SKK SLL STD TMM TRL VEB VEF ZMK ZWL
"""

CURRENT = frozenset(_CURRENT.split())
WITHDRAWN = frozenset(_WITHDRAWN.split())
CODES = CURRENT | WITHDRAWN
