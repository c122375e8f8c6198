import Foundation
import Testing
@testable import QScheduleAgent

/// Next fire times, derived from the Quartz rules (DESIGN §6). The expected values were
/// computed by `Tests/Tools/cron_oracle.py` — an independent day-walking reference over
/// Python's zoneinfo, sharing no code with the engine — and each is commented with the rule
/// it exercises and the wall time it means. Regenerate with
/// `python3 Tests/Tools/cron_oracle.py Tests/Tools/cron_cases.json`.
@Suite("Cron next-fire table")
struct CronTableTests {
    /// (expression, start instant in epoch ms, IANA zone, expected next fire in epoch ms or nil = never)
    static let cases: [(String, Int64, String, Int64?)] = [
        // seed car.coupon.sendOutdateMsg: lastRun 2015-02-12 09:30 -> nextRun 1423791000000 -> 2015-02-13T09:30:00+08:00
        ("0 30 9 * * ?", 1423704600000, "Asia/Shanghai", 1423791000000),
        // seed car.coupon.execOutdate: lastRun 2015-02-12 01:00 -> nextRun 1423760400000 -> 2015-02-13T01:00:00+08:00
        ("0 0 1 * * ?", 1423674000000, "Asia/Shanghai", 1423760400000),
        // seed: from its lastUpdate, still the next 09:30 -> 2015-02-13T09:30:00+08:00
        ("0 30 9 * * ?", 1423730849000, "Asia/Shanghai", 1423791000000),
        // seed: from its lastUpdate, the next 01:00 -> 2015-02-13T01:00:00+08:00
        ("0 0 1 * * ?", 1423730849000, "Asia/Shanghai", 1423760400000),
        // every second: the next whole second -> 2024-05-15T10:20:31+00:00
        ("* * * * * ?", 1715768430500, "UTC", 1715768431000),
        // second 0 of every minute -> 2024-05-15T10:21:00+00:00
        ("0 * * * * ?", 1715768430500, "UTC", 1715768460000),
        // 0,15,30,45: after :30.5 -> :45 -> 2024-05-15T10:20:45+00:00
        ("0/15 * * * * ?", 1715768430500, "UTC", 1715768445000),
        // 5,20,35,50: -> :35 -> 2024-05-15T10:20:35+00:00
        ("5/15 * * * * ?", 1715768430500, "UTC", 1715768435000),
        // */15 = 0/15 -> 2024-05-15T10:20:45+00:00
        ("*/15 * * * * ?", 1715768430500, "UTC", 1715768445000),
        // 10,20,30,40 -> :40 -> 2024-05-15T10:20:40+00:00
        ("10-40/10 * * * * ?", 1715768430500, "UTC", 1715768440000),
        // exactly :30 is not after :30.5 -> next minute -> 2024-05-15T10:21:30+00:00
        ("30 * * * * ?", 1715768430500, "UTC", 1715768490000),
        // 31 -> this minute -> 2024-05-15T10:20:31+00:00
        ("31 * * * * ?", 1715768430500, "UTC", 1715768431000),
        // list -> next minute :01 -> 2024-05-15T10:21:01+00:00
        ("1,2,3 * * * * ?", 1715768430500, "UTC", 1715768461000),
        // wrapping range 50..59,0..10 -> :50 -> 2024-05-15T10:20:50+00:00
        ("50-10 * * * * ?", 1715768430500, "UTC", 1715768450000),
        // wrapping range with step: 50,55,0,5,10 -> 2024-05-15T10:20:50+00:00
        ("50-10/5 * * * * ?", 1715768430500, "UTC", 1715768450000),
        // minutes 0,7,...,56 -> 10:21 -> 2024-05-15T10:21:00+00:00
        ("0 0/7 * * * ?", 1715768430500, "UTC", 1715768460000),
        // every 5 minutes -> 10:25 -> 2024-05-15T10:25:00+00:00
        ("0 */5 * * * ?", 1715768430500, "UTC", 1715768700000),
        // minute 20 passed -> 11:20 -> 2024-05-15T11:20:00+00:00
        ("0 20 * * * ?", 1715768430500, "UTC", 1715772000000),
        // top of the hour -> 11:00 -> 2024-05-15T11:00:00+00:00
        ("0 0 * * * ?", 1715768430500, "UTC", 1715770800000),
        // wrapping hours 22..23,0..2 -> 22:00 -> 2024-05-15T22:00:00+00:00
        ("0 0 22-2 * * ?", 1715768430500, "UTC", 1715810400000),
        // hours 0,2 -> tomorrow 00:00 -> 2024-05-16T00:00:00+00:00
        ("0 0 0-3/2 * * ?", 1715768430500, "UTC", 1715817600000),
        // working hours -> 11:00 -> 2024-05-15T11:00:00+00:00
        ("0 0 9-17 * * ?", 1715768430500, "UTC", 1715770800000),
        // lists in two fields -> 20:15 -> 2024-05-15T20:15:00+00:00
        ("0 15,45 8,20 * * ?", 1715768430500, "UTC", 1715804100000),
        // odd days 1,3,...,31: the 15th is odd and its noon is ahead -> today -> 2024-05-15T12:00:00+00:00
        ("0 0 12 1/2 * ?", 1715768430500, "UTC", 1715774400000),
        // first of the month -> June 1 -> 2024-06-01T00:00:00+00:00
        ("0 0 0 1 * ?", 1715768430500, "UTC", 1717200000000),
        // 15th, midnight passed -> June 15 -> 2024-06-15T00:00:00+00:00
        ("0 0 0 15 * ?", 1715768430500, "UTC", 1718409600000),
        // 15th noon -> today -> 2024-05-15T12:00:00+00:00
        ("0 0 12 15 * ?", 1715768430500, "UTC", 1715774400000),
        // Q1 only -> next Jan 1 -> 2025-01-01T00:00:00+00:00
        ("0 0 0 * JAN-MAR ?", 1715768430500, "UTC", 1735689600000),
        // names in lower case -> July 1 -> 2024-07-01T00:00:00+00:00
        ("0 0 0 * jan,jul ?", 1715768430500, "UTC", 1719792000000),
        // months 1,4,7,10 -> July 1 -> 2024-07-01T00:00:00+00:00
        ("0 0 0 1 */3 ?", 1715768430500, "UTC", 1719792000000),
        // wrapping month range NOV..DEC,JAN..FEB -> Nov 1 -> 2024-11-01T00:00:00+00:00
        ("0 0 0 1 NOV-FEB ?", 1715768430500, "UTC", 1730419200000),
        // weekdays; 2024-05-15 is a Wednesday -> Thu 16th -> 2024-05-16T00:00:00+00:00
        ("0 0 0 ? * MON-FRI", 1715768430500, "UTC", 1715817600000),
        // weekends -> Sat 18th -> 2024-05-18T00:00:00+00:00
        ("0 0 0 ? * SAT,SUN", 1715768430500, "UTC", 1715990400000),
        // wrapping weekday range FRI,SAT,SUN,MON -> Fri 17th -> 2024-05-17T00:00:00+00:00
        ("0 0 0 ? * FRI-MON", 1715768430500, "UTC", 1715904000000),
        // 1 = SUN -> Sun 19th -> 2024-05-19T00:00:00+00:00
        ("0 0 0 ? * 1", 1715768430500, "UTC", 1716076800000),
        // 7 = SAT -> Sat 18th -> 2024-05-18T00:00:00+00:00
        ("0 0 0 ? * 7", 1715768430500, "UTC", 1715990400000),
        // 2-6 = MON-FRI -> Thu 16th -> 2024-05-16T00:00:00+00:00
        ("0 0 0 ? * 2-6", 1715768430500, "UTC", 1715817600000),
        // lower-case day name -> Sun 19th -> 2024-05-19T00:00:00+00:00
        ("0 0 0 ? * sun", 1715768430500, "UTC", 1716076800000),
        // weekdays 1,3,5,7 = SUN,TUE,THU,SAT -> Thu 16th -> 2024-05-16T00:00:00+00:00
        ("0 0 0 ? * */2", 1715768430500, "UTC", 1715817600000),
        // today is Wednesday but 10:30 > 10:20 -> today 10:30 -> 2024-05-15T10:30:00+00:00
        ("0 30 10 ? * WED", 1715768430500, "UTC", 1715769000000),
        // Wednesday 10:10 passed -> next Wednesday -> 2024-05-22T10:10:00+00:00
        ("0 10 10 ? * WED", 1715768430500, "UTC", 1716372600000),
        // May 15 10:00 passed -> next year -> 2025-05-15T10:00:00+00:00
        ("0 0 10 15 5 ?", 1715768430500, "UTC", 1747303200000),
        // explicit year -> 2025-05-15T10:00:00+00:00
        ("0 0 10 15 5 ? 2025", 1715768430500, "UTC", 1747303200000),
        // only 2024, and it has passed -> never -> never
        ("0 0 10 15 5 ? 2024", 1715768430500, "UTC", nil),
        // year range -> 2025-05-15T10:00:00+00:00
        ("0 0 10 15 5 ? 2024-2026", 1715768430500, "UTC", 1747303200000),
        // year step 2030,2035,... -> 2030-01-01 -> 2030-01-01T00:00:00+00:00
        ("0 0 0 1 1 ? 2030/5", 1715768430500, "UTC", 1893456000000),
        // year list -> 2027 -> 2027-01-01T00:00:00+00:00
        ("0 0 0 1 1 ? 2027,2029", 1715768430500, "UTC", 1798761600000),
        // the last second Quartz can fire -> 2099-12-31T23:59:59+00:00
        ("59 59 23 31 12 ? 2099", 1715768430500, "UTC", 4102444799000),
        // a past year -> never -> never
        ("0 0 0 1 1 ? 1999", 1715768430500, "UTC", nil),
        // L = last day of month (leap February) -> 2024-02-29T12:00:00+00:00
        ("0 0 12 L * ?", 1707523200000, "UTC", 1709208000000),
        // L-3 = three days before the last (leap February) -> 2024-02-26T12:00:00+00:00
        ("0 0 12 L-3 * ?", 1707523200000, "UTC", 1708948800000),
        // LW = last weekday of month (leap February) -> 2024-02-29T12:00:00+00:00
        ("0 0 12 LW * ?", 1707523200000, "UTC", 1709208000000),
        // 15W = weekday nearest the 15th (leap February) -> 2024-02-15T12:00:00+00:00
        ("0 0 12 15W * ?", 1707523200000, "UTC", 1707998400000),
        // L = last day of month (common February) -> 2023-02-28T12:00:00+00:00
        ("0 0 12 L * ?", 1675987200000, "UTC", 1677585600000),
        // L-3 = three days before the last (common February) -> 2023-02-25T12:00:00+00:00
        ("0 0 12 L-3 * ?", 1675987200000, "UTC", 1677326400000),
        // LW = last weekday of month (common February) -> 2023-02-28T12:00:00+00:00
        ("0 0 12 LW * ?", 1675987200000, "UTC", 1677585600000),
        // 15W = weekday nearest the 15th (common February) -> 2023-02-15T12:00:00+00:00
        ("0 0 12 15W * ?", 1675987200000, "UTC", 1676462400000),
        // L = last day of month (April 30 noon) -> 2024-05-31T12:00:00+00:00
        ("0 0 12 L * ?", 1714478400000, "UTC", 1717156800000),
        // L-3 = three days before the last (April 30 noon) -> 2024-05-28T12:00:00+00:00
        ("0 0 12 L-3 * ?", 1714478400000, "UTC", 1716897600000),
        // LW = last weekday of month (April 30 noon) -> 2024-05-31T12:00:00+00:00
        ("0 0 12 LW * ?", 1714478400000, "UTC", 1717156800000),
        // 15W = weekday nearest the 15th (April 30 noon) -> 2024-05-15T12:00:00+00:00
        ("0 0 12 15W * ?", 1714478400000, "UTC", 1715774400000),
        // L = last day of month (last second of August) -> 2024-09-30T12:00:00+00:00
        ("0 0 12 L * ?", 1725148799000, "UTC", 1727697600000),
        // L-3 = three days before the last (last second of August) -> 2024-09-27T12:00:00+00:00
        ("0 0 12 L-3 * ?", 1725148799000, "UTC", 1727438400000),
        // LW = last weekday of month (last second of August) -> 2024-09-30T12:00:00+00:00
        ("0 0 12 LW * ?", 1725148799000, "UTC", 1727697600000),
        // 15W = weekday nearest the 15th (last second of August) -> 2024-09-16T12:00:00+00:00
        ("0 0 12 15W * ?", 1725148799000, "UTC", 1726488000000),
        // L-30: January 1 only in 31-day months; February has none -> 2024-01-01T12:00:00+00:00
        ("0 0 12 L-30 * ?", 1704067200000, "UTC", 1704110400000),
        // L-28 in leap February = Feb 1 (passed) -> March 3 -> 2024-03-03T12:00:00+00:00
        ("0 0 12 L-28 * ?", 1706832000000, "UTC", 1709467200000),
        // 1W: 2022-10-01 is Saturday; W does not cross back into September -> Monday Oct 3 -> 2022-10-03T12:00:00+00:00
        ("0 0 12 1W * ?", 1663632000000, "UTC", 1664798400000),
        // 1W: 2023-07-01 Saturday -> Monday Jul 3 -> 2023-07-03T12:00:00+00:00
        ("0 0 12 1W * ?", 1687219200000, "UTC", 1688385600000),
        // 31W: 2023-12-31 is Sunday; W does not cross into January -> Friday Dec 29 -> 2023-12-29T12:00:00+00:00
        ("0 0 12 31W * ?", 1701388800000, "UTC", 1703851200000),
        // 31W: April has no 31st -> skipped; May 31 2024 is a Friday -> 2024-05-31T12:00:00+00:00
        ("0 0 12 31W * ?", 1711929600000, "UTC", 1717156800000),
        // 30W: February has no 30th -> March 29 (30th is Saturday) -> 2024-03-29T12:00:00+00:00
        ("0 0 12 30W * ?", 1706745600000, "UTC", 1711713600000),
        // 15W: 2024-06-15 is Saturday -> Friday 14th -> 2024-06-14T12:00:00+00:00
        ("0 0 12 15W * ?", 1717200000000, "UTC", 1718366400000),
        // 15W: 2024-09-15 is Sunday -> Monday 16th -> 2024-09-16T12:00:00+00:00
        ("0 0 12 15W * ?", 1725148800000, "UTC", 1726488000000),
        // LW: 2024-03-31 is Sunday -> Friday 29th -> 2024-03-29T12:00:00+00:00
        ("0 0 12 LW * ?", 1709251200000, "UTC", 1711713600000),
        // LW: 2024-08-31 is Saturday -> Friday 30th -> 2024-08-30T12:00:00+00:00
        ("0 0 12 LW * ?", 1722470400000, "UTC", 1725019200000),
        // 31st: skips February and April -> March 31 -> 2024-03-31T12:00:00+00:00
        ("0 0 12 31 * ?", 1706702400000, "UTC", 1711886400000),
        // 30th: February has none -> March 30 -> 2024-03-30T12:00:00+00:00
        ("0 0 12 30 * ?", 1706659200000, "UTC", 1711800000000),
        // Feb 29: next leap year 2024 -> 2024-02-29T12:00:00+00:00
        ("0 0 12 29 2 ?", 1614556800000, "UTC", 1709208000000),
        // Feb 29 at its own fire time -> 2028 -> 2028-02-29T12:00:00+00:00
        ("0 0 12 29 2 ?", 1709208000000, "UTC", 1835438400000),
        // Feb 29 after 2096: 2100 is not leap and past 2099 -> never -> never
        ("0 0 12 29 2 ?", 3981398400000, "UTC", nil),
        // Feb 29 only in 2097-2099: none are leap -> never -> never
        ("0 0 12 29 2 ? 2097-2099", 1704067200000, "UTC", nil),
        // Feb 30 never exists -> never -> never
        ("0 0 12 30 2 ?", 1704067200000, "UTC", nil),
        // 31st of 30-day months never exists -> never -> never
        ("0 0 12 31 4,6,9,11 ?", 1704067200000, "UTC", nil),
        // range past the month's end: 2023 Feb has 28 days -> 2024-02-28 -> 2024-02-28T00:00:00+00:00
        ("0 0 0 28-31 2 ?", 1677542400000, "UTC", 1709078400000),
        // 6L = last Friday of the month -> 2024-01-26T12:00:00+00:00
        ("0 0 12 ? * 6L", 1704067200000, "UTC", 1706270400000),
        // 2#1 = first Monday -> 2024-01-01T12:00:00+00:00
        ("0 0 12 ? * 2#1", 1704067200000, "UTC", 1704110400000),
        // 6#3 = third Friday -> 2024-01-19T12:00:00+00:00
        ("0 0 12 ? * 6#3", 1704067200000, "UTC", 1705665600000),
        // 1#5 = fifth Sunday (months without one are skipped) -> 2024-03-31T12:00:00+00:00
        ("0 0 12 ? * 1#5", 1704067200000, "UTC", 1711886400000),
        // 6L = last Friday of the month -> 2024-02-23T12:00:00+00:00
        ("0 0 12 ? * 6L", 1706745600000, "UTC", 1708689600000),
        // 2#1 = first Monday -> 2024-02-05T12:00:00+00:00
        ("0 0 12 ? * 2#1", 1706745600000, "UTC", 1707134400000),
        // 6#3 = third Friday -> 2024-02-16T12:00:00+00:00
        ("0 0 12 ? * 6#3", 1706745600000, "UTC", 1708084800000),
        // 1#5 = fifth Sunday (months without one are skipped) -> 2024-03-31T12:00:00+00:00
        ("0 0 12 ? * 1#5", 1706745600000, "UTC", 1711886400000),
        // 6L = last Friday of the month -> 2024-04-26T12:00:00+00:00
        ("0 0 12 ? * 6L", 1711717200000, "UTC", 1714132800000),
        // 2#1 = first Monday -> 2024-04-01T12:00:00+00:00
        ("0 0 12 ? * 2#1", 1711717200000, "UTC", 1711972800000),
        // 6#3 = third Friday -> 2024-04-19T12:00:00+00:00
        ("0 0 12 ? * 6#3", 1711717200000, "UTC", 1713528000000),
        // 1#5 = fifth Sunday (months without one are skipped) -> 2024-03-31T12:00:00+00:00
        ("0 0 12 ? * 1#5", 1711717200000, "UTC", 1711886400000),
        // 6L = last Friday of the month -> 2024-12-27T12:00:00+00:00
        ("0 0 12 ? * 6L", 1733011200000, "UTC", 1735300800000),
        // 2#1 = first Monday -> 2024-12-02T12:00:00+00:00
        ("0 0 12 ? * 2#1", 1733011200000, "UTC", 1733140800000),
        // 6#3 = third Friday -> 2024-12-20T12:00:00+00:00
        ("0 0 12 ? * 6#3", 1733011200000, "UTC", 1734696000000),
        // 1#5 = fifth Sunday (months without one are skipped) -> 2024-12-29T12:00:00+00:00
        ("0 0 12 ? * 1#5", 1733011200000, "UTC", 1735473600000),
        // FRIL = 6L with a day name -> 2024-01-26T12:00:00+00:00
        ("0 0 12 ? * FRIL", 1704067200000, "UTC", 1706270400000),
        // MON#2 with a day name: second Monday -> 2024-01-08T12:00:00+00:00
        ("0 0 12 ? * MON#2", 1704067200000, "UTC", 1704715200000),
        // L alone in day-of-week = 7 = Saturday -> 2024-05-18T12:00:00+00:00
        ("0 0 12 ? * L", 1715731200000, "UTC", 1716033600000),
        // 7L = last Saturday -> 2024-05-25T12:00:00+00:00
        ("0 0 12 ? * 7L", 1714521600000, "UTC", 1716638400000),
        // 3#5 = fifth Tuesday: 2024-01-30 -> 2024-01-30T12:00:00+00:00
        ("0 0 12 ? * 3#5", 1704067200000, "UTC", 1706616000000),
        // fifth Monday of February: only when Feb 1 is a Monday in a leap year -> 2044 -> 2044-02-29T12:00:00+00:00
        ("0 0 12 ? 2 2#5", 1704067200000, "UTC", 2340360000000),
        // fifth Sunday of February 2024-2030: 2032 is out of range -> never -> never
        ("0 0 12 ? 2 1#5 2024-2030", 1704067200000, "UTC", nil),
        // spring gap: 02:30 does not exist on Mar 14 -> fires at the transition, 03:00 EDT -> 2021-03-14T03:00:00-04:00
        ("0 30 2 * * ?", 1615654800000, "America/New_York", 1615705200000),
        // after the gap-mapped fire -> Mar 15 02:30 -> 2021-03-15T02:30:00-04:00
        ("0 30 2 * * ?", 1615707000000, "America/New_York", 1615789800000),
        // 02:00 in the gap -> 03:00 EDT -> 2021-03-14T03:00:00-04:00
        ("0 0 2 * * ?", 1615654800000, "America/New_York", 1615705200000),
        // hourly across the gap: after 01:00 -> 02:00 maps to 03:00 -> 2021-03-14T03:00:00-04:00
        ("0 0 * * * ?", 1615701600000, "America/New_York", 1615705200000),
        // hourly after 03:00 EDT -> 04:00 -> 2021-03-14T04:00:00-04:00
        ("0 0 * * * ?", 1615705200000, "America/New_York", 1615708800000),
        // 03:00 exists on the gap day -> 2021-03-14T03:00:00-04:00
        ("0 0 3 * * ?", 1615654800000, "America/New_York", 1615705200000),
        // 01:59 just before the gap -> 2021-03-14T01:59:00-05:00
        ("0 59 1 * * ?", 1615654800000, "America/New_York", 1615705140000),
        // fall overlap: 01:30 occurs twice -> the first (EDT) -> 2021-11-07T01:30:00-04:00
        ("0 30 1 * * ?", 1636214400000, "America/New_York", 1636263000000),
        // after the first 01:30 -> not again at 01:30 EST; next day -> 2021-11-08T01:30:00-05:00
        ("0 30 1 * * ?", 1636263000000, "America/New_York", 1636353000000),
        // hourly into the overlap -> 01:00 EDT -> 2021-11-07T01:00:00-04:00
        ("0 0 * * * ?", 1636259400000, "America/New_York", 1636261200000),
        // hourly after 01:00 EDT -> 02:00 EST (01:00 EST is not repeated) -> 2021-11-07T02:00:00-05:00
        ("0 0 * * * ?", 1636261200000, "America/New_York", 1636268400000),
        // from inside the repeated 01:xx: 01:30 already fired (EDT), the repeated hour fires nothing -> 02:30 EST -> 2021-11-07T02:30:00-05:00
        ("0 30 * * * ?", 1636265400000, "America/New_York", 1636270200000),
        // every 30 s at the end of the first 01:59 -> 02:00 EST (the repeated hour is skipped) -> 2021-11-07T02:00:00-05:00
        ("*/30 * * * * ?", 1636264785000, "America/New_York", 1636268400000),
        // noon on the spring day: 23-hour day, still noon -> 2021-03-14T12:00:00-04:00
        ("0 0 12 * * ?", 1615658400000, "America/New_York", 1615737600000),
        // noon on the fall day: 25-hour day, still noon -> 2021-11-07T12:00:00-05:00
        ("0 0 12 * * ?", 1636218000000, "America/New_York", 1636304400000),
        // midnight before the spring change -> 2021-03-14T00:00:00-05:00
        ("0 0 0 * * ?", 1615654800000, "America/New_York", 1615698000000),
        // London gap: 01:30 does not exist -> the transition, 02:00 BST -> 2021-03-28T02:00:00+01:00
        ("0 30 1 * * ?", 1616846400000, "Europe/London", 1616893200000),
        // London overlap: 01:30 BST first -> 2021-10-31T01:30:00+01:00
        ("0 30 1 * * ?", 1635591600000, "Europe/London", 1635640200000),
        // London: not again at 01:30 GMT -> 2021-11-01T01:30:00+00:00
        ("0 30 1 * * ?", 1635640200000, "Europe/London", 1635730200000),
        // weekday 09:00 across the spring weekend -> Mon 09:00 BST -> 2021-03-29T09:00:00+01:00
        ("0 0 9 ? * MON-FRI", 1616752800000, "Europe/London", 1617004800000),
        // Sunday 01:15 on the fall-back day -> BST occurrence -> 2021-10-31T01:15:00+01:00
        ("0 15 1 ? * SUN", 1635073200000, "Europe/London", 1635639300000),
        // Sydney spring gap in October: 02:30 -> the transition, 03:00 AEDT -> 2021-10-03T03:00:00+11:00
        ("0 30 2 * * ?", 1633140000000, "Australia/Sydney", 1633190400000),
        // Sydney fall overlap in April: the first 02:30 (AEDT) -> 2021-04-04T02:30:00+11:00
        ("0 30 2 * * ?", 1617411600000, "Australia/Sydney", 1617463800000),
        // Sydney: not again at 02:30 AEST -> 2021-04-05T02:30:00+10:00
        ("0 30 2 * * ?", 1617463800000, "Australia/Sydney", 1617553800000),
        // Sydney first of month -> 2021-10-01T00:00:00+10:00
        ("0 0 0 1 * ?", 1631628000000, "Australia/Sydney", 1633010400000),
        // Lord Howe 30-minute gap: 02:15 -> the transition, 02:30 -> 2021-10-03T02:30:00+11:00
        ("0 15 2 * * ?", 1633138200000, "Australia/Lord_Howe", 1633188600000),
        // Lord Howe: 02:45 exists after the 30-minute jump -> 2021-10-03T02:45:00+11:00
        ("0 45 2 * * ?", 1633138200000, "Australia/Lord_Howe", 1633189500000),
        // Lord Howe 30-minute overlap: the first 01:45 -> 2021-04-04T01:45:00+11:00
        ("0 45 1 * * ?", 1617411600000, "Australia/Lord_Howe", 1617461100000),
        // +05:30, no DST -> 2024-05-15T09:00:00+05:30
        ("0 0 9 * * ?", 1715731200000, "Asia/Kolkata", 1715743800000),
        // +05:45 -> 2024-05-15T09:00:00+05:45
        ("0 0 9 * * ?", 1715731200000, "Asia/Kathmandu", 1715742900000),
        // +12:45 (winter) -> 2024-05-16T09:00:00+12:45
        ("0 0 9 * * ?", 1715731200000, "Pacific/Chatham", 1715804100000),
        // +14:00, the first new year -> 2025-01-01T00:00:00+14:00
        ("0 0 0 1 1 ?", 1715731200000, "Pacific/Kiritimati", 1735639200000),
        // -11:00 -> 2025-01-01T00:00:00-11:00
        ("0 0 0 1 1 ?", 1715731200000, "Pacific/Pago_Pago", 1735729200000),
        // Sao Paulo dropped DST in 2019: plain midnight -> 2019-11-02T00:00:00-03:00
        ("0 0 0 * * ?", 1572577200000, "America/Sao_Paulo", 1572663600000),
        // Sao Paulo 2018: DST began at midnight; 00:00 in the gap -> 01:00 -> 2018-11-04T01:00:00-02:00
        ("0 0 0 * * ?", 1541257200000, "America/Sao_Paulo", 1541300400000),
        // UTC noon -> 2024-05-15T12:00:00+00:00
        ("0 0 12 * * ?", 1715731200000, "UTC", 1715774400000),
        // exactly at a fire time: strictly after -> next day -> 2024-05-16T12:00:00+00:00
        ("0 0 12 * * ?", 1715774400000, "UTC", 1715860800000),
        // 1 ms before a fire time -> that fire time -> 2024-05-15T12:00:00+00:00
        ("0 0 12 * * ?", 1715774399999, "UTC", 1715774400000),
        // 1 ms after -> next day -> 2024-05-16T12:00:00+00:00
        ("0 0 12 * * ?", 1715774400001, "UTC", 1715860800000),
        // every second from an exact second -> +1 s -> 2024-05-15T12:00:01+00:00
        ("* * * * * ?", 1715774400000, "UTC", 1715774401000),
        // every second from .999 -> the next whole second -> 2024-05-15T12:00:01+00:00
        ("* * * * * ?", 1715774400999, "UTC", 1715774401000),
        // new year one second later -> 2025-01-01T00:00:00+00:00
        ("0 0 0 1 1 ?", 1735689599000, "UTC", 1735689600000),
        // the last second of the year, after itself -> next year -> 2025-12-31T23:59:59+00:00
        ("59 59 23 31 12 ?", 1735689599000, "UTC", 1767225599000),
        // from Monday 2024-12-30 00:00 itself: strictly after -> the next Monday, across the new year -> 2025-01-06T00:00:00+00:00
        ("0 0 0 ? * MON", 1735516800000, "UTC", 1736121600000),
        // last day of February next year (leap): Feb 29 2024 -> 2024-02-29T00:00:00+00:00
        ("0 0 0 L 2 ?", 1677628800000, "UTC", 1709164800000),
        // last day of February 2025: the 28th -> 2025-02-28T00:00:00+00:00
        ("0 0 0 L 2 ?", 1709251200000, "UTC", 1740700800000),
        // first Monday, only 2026: December 7 -> 2026-12-07T00:00:00+00:00
        ("0 0 0 ? * 2#1 2026", 1795478400000, "UTC", 1796601600000),
        // Friday 10:50 -> Monday 09:00 -> 2024-05-20T09:00:00+00:00
        ("0 0/20 9-10 ? * MON-FRI", 1715943000000, "UTC", 1716195600000),
        // seconds list with minute step -> 10:20:45 -> 2024-05-15T10:20:45+00:00
        ("15,45 */10 * * * ?", 1715768430000, "UTC", 1715768445000),
        // third Friday, from its own fire time -> June 21 -> 2024-06-21T12:00:00+00:00
        ("0 0 12 ? * 6#3", 1715947200000, "UTC", 1718971200000),
        // last Thursday (US Thanksgiving 2024), from itself -> Dec 26 -> 2024-12-26T12:00:00+00:00
        ("0 0 12 ? * 5L", 1732795200000, "UTC", 1735214400000),
        // three days before the end of leap February: Feb 26 -> 2024-02-26T12:00:00+00:00
        ("0 0 12 L-3 2 ?", 1704067200000, "UTC", 1708948800000),
        // fall back: after 01:59:59 EDT fired, the repeated 01:59:59 EST does not fire again -> next day -> 2021-11-08T01:59:59-05:00
        ("59 59 1 * * ?", 1636264799000, "America/New_York", 1636354799000),
        // fall back: every :59 of 01:xx fired in EDT; the repeated hour fires none -> next day 01:00:59 -> 2021-11-08T01:00:59-05:00
        ("59 * 1 * * ?", 1636264799000, "America/New_York", 1636351259000),
        // asked from inside the repeated hour: nothing of 01:xx again -> next day -> 2021-11-08T01:00:59-05:00
        ("59 * 1 * * ?", 1636266659000, "America/New_York", 1636351259000),
        // 30-minute gap 02:00-02:30: 02:14 fires at the transition 02:30 -> 2021-10-03T02:30:00+11:00
        ("0 14,32,35 2 * * ?", 1633140000000, "Australia/Lord_Howe", 1633188600000),
        // after the gap fire, the existing 02:32 still fires -> 2021-10-03T02:32:00+11:00
        ("0 14,32,35 2 * * ?", 1633188600000, "Australia/Lord_Howe", 1633188720000),
        // then 02:35 -> 2021-10-03T02:35:00+11:00
        ("0 14,32,35 2 * * ?", 1633188720000, "Australia/Lord_Howe", 1633188900000),
        // four gap times collapse into one fire at the transition -> 2021-03-14T03:00:00-04:00
        ("0 0,15,30,45 2 * * ?", 1615704600000, "America/New_York", 1615705200000),
        // after it: the gap times are not fired again -> next day 02:00 -> 2021-03-15T02:00:00-04:00
        ("0 0,15,30,45 2 * * ?", 1615705200000, "America/New_York", 1615788000000),
        // Chatham gap 02:45 -> 03:45: 02:45 itself is missing -> the transition -> 2021-09-26T03:45:00+13:45
        ("0 45 2 * * ?", 1632525300000, "Pacific/Chatham", 1632578400000),
        // Berlin gap 02:00 -> 03:00: 02:30 -> the transition, 03:00 CEST -> 2021-03-28T03:00:00+02:00
        ("0 30 2 * * ?", 1616886000000, "Europe/Berlin", 1616893200000),
        // Berlin overlap: 02:30 CEST, the first occurrence -> 2021-10-31T02:30:00+02:00
        ("0 30 2 * * ?", 1635631200000, "Europe/Berlin", 1635640200000),
        // after it, 02:30 CET is not a second fire -> next day -> 2021-11-01T02:30:00+01:00
        ("0 30 2 * * ?", 1635640200000, "Europe/Berlin", 1635730200000),
        // Sao Paulo 2018: midnight missing -> the transition 01:00 -02:00 -> 2018-11-04T01:00:00-02:00
        ("0 0 0 * * ?", 1541257200000, "America/Sao_Paulo", 1541300400000),
        // Sao Paulo 2019 fall back at midnight: 23:00 -02:00 is the first occurrence -> 2019-02-16T23:00:00-02:00
        ("0 0 23 * * ?", 1550325600000, "America/Sao_Paulo", 1550365200000),
        // after it, 23:00 -03:00 does not fire again -> next day -> 2019-02-17T23:00:00-03:00
        ("0 0 23 * * ?", 1550365200000, "America/Sao_Paulo", 1550455200000),
        // L-2W: Jan 31 - 2 = Mon 29, a weekday -> 2024-01-29T12:00:00+00:00
        ("0 0 12 L-2W * ?", 1704067200000, "UTC", 1706529600000),
        // L-3W: Jan 28 is a Sunday -> Monday 29 -> 2024-01-29T12:00:00+00:00
        ("0 0 12 L-3W * ?", 1704067200000, "UTC", 1706529600000),
        // L-1W: Mar 30 is a Saturday -> Friday 29 -> 2024-03-29T12:00:00+00:00
        ("0 0 12 L-1W * ?", 1709251200000, "UTC", 1711713600000),
        // L-0W = LW: Jun 30 is a Sunday -> Friday 28 -> 2024-06-28T12:00:00+00:00
        ("0 0 12 L-0W * ?", 1717200000000, "UTC", 1719576000000),
    ]

    @Test("the table has at least 150 cases, and the seed's two jobs are among them")
    func tableSize() {
        #expect(Self.cases.count >= 150)
        #expect(Self.cases.contains { $0 == ("0 30 9 * * ?", 1423704600000, "Asia/Shanghai", 1423791000000) })
        #expect(Self.cases.contains { $0 == ("0 0 1 * * ?", 1423674000000, "Asia/Shanghai", 1423760400000) })
    }

    @Test("next fire time strictly after the start instant", arguments: Self.cases.indices)
    func nextFire(index: Int) throws {
        let (text, after, zoneName, expected) = Self.cases[index]
        let cron = try CronExpression(text)
        let zone = try #require(TimeZone(identifier: zoneName))
        let next = cron.next(after: Date(timeIntervalSince1970: Double(after) / 1000), in: zone)
        #expect(next?.epochMilliseconds == expected, "\(text) after \(after) in \(zoneName)")
    }
}
