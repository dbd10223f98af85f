"""Dates in many human formats, to be rewritten as ISO: "Mon 23 Nov 2026" -> "2026-11-23"."""
import datetime
import functools
import string


MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
DATE_FORMATS = (
    "{d} {mon} {yyyy}",  # 23 Nov 2026
    "{d} {MON} {yyyy}",  # 23 NOV 2026
    "{d} {month} {yyyy}",  # 23 November 2026
    "{month} {d}, {yyyy}",  # November 23, 2026
    "{mon} {d}, {yyyy}",  # Nov 23, 2026
    "{mon} {d} {yyyy}",  # Nov 23 2026
    "{d}{th} {month} {yyyy}",  # 23rd November 2026
    "{month} {d}{th}, {yyyy}",  # November 23rd, 2026
    "{wd} {d} {month} {yyyy}",  # Mon 23 November 2026
    "{wd}, {d} {mon} {yyyy}",  # Mon, 23 Nov 2026
    "{weekday}, {month} {d}, {yyyy}",  # Monday, November 23, 2026
    "{weekday} {d} {month} {yyyy}",  # Monday 23 November 2026
    "{dd}/{mm}/{yyyy}",  # 23/11/2026 (day first)
    "{d}/{m}/{yyyy}",  # 3/4/2026
    "{dd}.{mm}.{yyyy}",  # 23.11.2026
    "{dd}.{mm}.{yy}",  # 23.11.26 (only when the years span less than a century)
    "{dd}-{mon}-{yyyy}",  # 23-Nov-2026
    "{yyyy}/{mm}/{dd}",  # 2026/11/23
    "{yyyy}-{mm}-{dd}",  # 2026-11-23 (already ISO)
)


def _ordinal_suffix(day):
    return "th" if 10 <= day % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")


def format_date(date, fmt):
    """`date` written in one of DATE_FORMATS (English names, independent of the locale)."""
    month, weekday = MONTHS[date.month - 1], WEEKDAYS[date.weekday()]
    return fmt.format(d=date.day, dd=f"{date.day:02d}", m=date.month, mm=f"{date.month:02d}",
                      yyyy=f"{date.year:04d}", yy=f"{date.year % 100:02d}", month=month, mon=month[:3],
                      MON=month[:3].upper(), weekday=weekday, wd=weekday[:3], th=_ordinal_suffix(date.day))


def _date_formats(params):
    short_years_ok = params["max_year"] - params["min_year"] < 100
    return [fmt for fmt in DATE_FORMATS if short_years_ok or "{yy}" not in fmt]


def generate(rng, params):
    first, last = datetime.date(params["min_year"], 1, 1), datetime.date(params["max_year"], 12, 31)
    date = datetime.date.fromordinal(rng.randint(first.toordinal(), last.toordinal()))
    return format_date(date, rng.choice(_date_formats(params))), date.isoformat()


@functools.cache
def alphabet():
    """Every character any format can produce: all formats over every day of a leap year, plus digits."""
    days = [datetime.date(2000, 1, 1) + datetime.timedelta(days=i) for i in range(366)]
    text = "".join(format_date(day, fmt) for day in days for fmt in DATE_FORMATS)
    return "".join(sorted(set(text + string.digits)))
