"""Independent hourly PV power histories for forecast evaluation.

Writes three files for one plant and one simulated weather history:
pvgis-gi.csv and pvgis-comp.csv (PVGIS 5.2 seriescalc hourly CSV exports,
components=0 and =1, values at HH:10 UTC) and generic.csv (timestamp,power_kw,
temperature at HH:00 UTC, sampled independently of the :10 rows).

The model is deliberately unlike spottrain's own generator (data/solar):
- Sun: Astronomical Almanac (Michalsky 1988) ephemeris plus Saemundsson
  refraction; the sun is a unit vector (east, north, up).
- Clear sky: Ineichen-Perez with a Linke turbidity interpolated by month.
- Weather: a daily sky state, AR(1) (phi 0.62) on a probit scale, mapped to a
  daily clear-sky index by the quantile function of a seasonal mixture of
  overcast / broken / clear days (Kumaraswamy shapes on disjoint ranges).
  Within the day a logit AR(1) per hour (phi 0.7) adds broken-cloud
  variability, largest on broken days, and each sample gets its own
  sub-hourly white noise on the same logit scale. The HH:00 samples use the
  slow state interpolated between the neighbouring HH:10 states.
- GHI -> beam/diffuse with Erbs; Hay-Davies transposition onto a plane of any
  slope and azimuth (PVGIS convention: 0 south, 90 west, -90 east) plus ground
  reflection with albedo 0.2.
- Power: PVWatts-style, gamma -0.004/K, Faiman cell temperature with wind,
  14% system losses, clipped at 95% of kWp (inverter limit).
- Temperature: seasonal + asymmetric diurnal cycle damped on cloudy days +
  AR(1) anomaly; wind: log-normal AR(1) with a diurnal and cloud term.
- Int=1 marks ~0.3% of daylight hours in runs of 1-3 h whose P and G are
  replaced by linear interpolation between the neighbouring rows (PVGIS files
  only; generic.csv keeps the true values).
"""

import argparse
import csv
import datetime as dt
import math
import os
import random

SYSTEM_LOSSES = 0.14          # PVGIS default, fraction
GAMMA = -0.004                # relative power change per K above 25 C
INVERTER_LIMIT = 0.95         # AC clip as a fraction of kWp
FAIMAN_U0, FAIMAN_U1 = 25.0, 6.84   # W/m2K, W s/m3K
ALBEDO = 0.2
SOLAR_CONSTANT = 1361.0       # W/m2
# Monthly Linke turbidity (mid-month), a dry continental site such as Madrid.
LINKE = (2.7, 2.9, 3.2, 3.4, 3.6, 3.8, 3.9, 3.8, 3.5, 3.2, 2.9, 2.7)
KC_MIN, KC_MAX = 0.05, 1.05   # range of the clear-sky index (cloud enhancement)
DAY_PHI = 0.62                # day-to-day AR(1) of the probit sky state
HOUR_PHI = 0.70               # hour-to-hour AR(1) of the logit cloud anomaly
SUBHOURLY = 0.35              # white-noise sd relative to the hourly sd
INT_FRACTION = 0.003          # share of daylight hours marked Int=1
# Daily clear-sky index classes: (low, high, kumaraswamy a, b).
OVERCAST = (0.10, 0.45, 1.6, 1.4)
BROKEN = (0.45, 0.85, 1.3, 1.3)
CLEAR = (0.85, 1.00, 2.5, 1.0)
DEG = math.pi / 180


# ---------------------------------------------------------------- sun
def sun_position(t, lat, lon):
    """Apparent sun elevation (deg) and unit vector (east, north, up) at t (UTC)."""
    n = t.timestamp() / 86400.0 + 2440587.5 - 2451545.0
    mean_lon = (280.460 + 0.9856474 * n) % 360
    anomaly = (357.528 + 0.9856003 * n) % 360 * DEG
    ecl = (mean_lon + 1.915 * math.sin(anomaly) + 0.020 * math.sin(2 * anomaly)) * DEG
    obl = (23.439 - 0.0000004 * n) * DEG
    ra = math.atan2(math.cos(obl) * math.sin(ecl), math.cos(ecl))
    dec = math.asin(math.sin(obl) * math.sin(ecl))
    gmst = (18.697374558 + 24.06570982441908 * n) % 24
    ha = (gmst * 15 + lon) * DEG - ra
    phi = lat * DEG
    east = -math.cos(dec) * math.sin(ha)
    north = math.sin(dec) * math.cos(phi) - math.cos(dec) * math.cos(ha) * math.sin(phi)
    up = math.sin(dec) * math.sin(phi) + math.cos(dec) * math.cos(ha) * math.cos(phi)
    true_elev = math.degrees(math.asin(max(-1.0, min(1.0, up))))
    elev = true_elev + refraction(true_elev)
    horiz = math.hypot(east, north) or 1.0
    c = math.cos(elev * DEG)
    return elev, (east / horiz * c, north / horiz * c, math.sin(elev * DEG))


def refraction(elev):
    """Saemundsson's atmospheric refraction (deg) for a true elevation (deg)."""
    if elev < -1.0:
        return 0.0
    return 1.02 / math.tan((elev + 10.3 / (elev + 5.11)) * DEG) / 60


def solar_hour(t, lon):
    """Approximate local mean solar time in hours (for diurnal cycles)."""
    return (t.hour + t.minute / 60 + lon / 15) % 24


# ---------------------------------------------------------------- clear sky
def extraterrestrial(t):
    """Extraterrestrial normal irradiance (W/m2) on t's day."""
    doy = t.timetuple().tm_yday
    return SOLAR_CONSTANT * (1 + 0.0334 * math.cos(2 * math.pi * (doy - 2.7) / 365.25))


def linke(t):
    """Linke turbidity, linear between mid-month values."""
    pos = (t.timetuple().tm_yday - 15.5) / 30.44
    i = math.floor(pos)
    w = pos - i
    return (1 - w) * LINKE[i % 12] + w * LINKE[(i + 1) % 12]


def ineichen(cosz, t, elevation_m):
    """Ineichen-Perez clear-sky (GHI, DNI, DHI) in W/m2 for cos(zenith) > 0."""
    zen = math.degrees(math.acos(cosz))
    am = 1 / (cosz + 0.50572 * (96.07995 - zen) ** -1.6364)
    am *= (1 - 2.25577e-5 * elevation_m) ** 5.25588   # absolute air mass
    tl, i0 = linke(t), extraterrestrial(t)
    fh1, fh2 = math.exp(-elevation_m / 8000), math.exp(-elevation_m / 1250)
    cg1, cg2 = 5.09e-5 * elevation_m + 0.868, 3.92e-5 * elevation_m + 0.0387
    ghi = cg1 * i0 * cosz * math.exp(-cg2 * am * (fh1 + fh2 * (tl - 1))) * math.exp(0.01 * am ** 1.8)
    ghi = max(ghi, 0.0)
    b = 0.664 + 0.163 / fh1
    dni = i0 * max(b * math.exp(-0.09 * am * (tl - 1)), 0.0)
    dni2 = ghi * max((1 - (0.1 - 0.2 * math.exp(-tl)) / (0.1 + 0.882 / fh1)) / cosz, 0.0)
    dni = min(dni, dni2)
    return ghi, dni, max(ghi - dni * cosz, 0.0)


# ---------------------------------------------------------------- irradiance
def erbs(ghi, cosz, i0):
    """Split GHI into (DNI, DHI) with the Erbs diffuse-fraction correlation."""
    kt = min(max(ghi / (i0 * max(cosz, 0.065)), 0.0), 1.0)
    if kt <= 0.22:
        kd = 1 - 0.09 * kt
    elif kt <= 0.80:
        kd = 0.9511 - 0.1604 * kt + 4.388 * kt ** 2 - 16.638 * kt ** 3 + 12.336 * kt ** 4
    else:
        kd = 0.165
    dhi = kd * ghi
    return (ghi - dhi) / cosz, dhi


def plane_normal(slope, azimuth):
    """Unit normal (east, north, up) of a plane; azimuth 0 south, 90 west."""
    s, a = slope * DEG, azimuth * DEG
    return (-math.sin(s) * math.sin(a), -math.sin(s) * math.cos(a), math.cos(s))


def hay_davies(ghi, dni, dhi, sun, normal, i0):
    """Plane-of-array (beam, sky diffuse, ground-reflected) irradiance, W/m2."""
    cosz = sun[2]
    cos_aoi = max(sum(a * b for a, b in zip(sun, normal)), 0.0)
    cos_tilt = normal[2]
    aniso = min(dni / i0, 1.0)
    rb = cos_aoi / max(cosz, 0.01745)
    beam = dni * cos_aoi
    diffuse = dhi * (aniso * rb + (1 - aniso) * (1 + cos_tilt) / 2)
    reflected = ghi * ALBEDO * (1 - cos_tilt) / 2
    return beam, diffuse, reflected


def pv_power(poa, t_air, wind, kwp):
    """AC power (W): PVWatts-style with Faiman cell temperature and clipping."""
    t_cell = t_air + poa / (FAIMAN_U0 + FAIMAN_U1 * wind)
    p = kwp * poa * (1 + GAMMA * (t_cell - 25)) * (1 - SYSTEM_LOSSES)
    return min(max(p, 0.0), kwp * 1000 * INVERTER_LIMIT)


# ---------------------------------------------------------------- weather
def summer_factor(t, lat):
    """+1 at the local summer solstice, -1 at the winter one."""
    doy = t.timetuple().tm_yday
    return math.copysign(1.0, lat or 1.0) * math.cos(2 * math.pi * (doy - 172) / 365.25)


def class_weights(summer):
    """Seasonal probabilities of (overcast, broken, clear) days."""
    p_over = 0.19 - 0.12 * summer
    p_clear = 0.46 + 0.18 * summer
    return p_over, 1 - p_over - p_clear, p_clear


def daily_kc(u, summer):
    """Daily clear-sky index: quantile u of the seasonal mixture of day classes."""
    classes = (OVERCAST, BROKEN, CLEAR)
    for k, ((lo, hi, a, b), w) in enumerate(zip(classes, class_weights(summer))):
        if u < w or k == len(classes) - 1:
            v = min(max(u / w, 1e-9), 1 - 1e-9)
            return lo + (hi - lo) * (1 - (1 - v) ** (1 / b)) ** (1 / a)   # Kumaraswamy
        u -= w


def hourly_sd(y):
    """Logit-scale sd of the hourly cloud anomaly: largest on broken days."""
    return 0.08 + 1.5 * (4 * y * (1 - y)) ** 2


def logit(y):
    return math.log(y / (1 - y))


def sigmoid(x):
    return 1 / (1 + math.exp(-x))


def phi_cdf(z):
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


def weather_states(times, lat, lon, seed):
    """Slow weather state at each HH:10 instant: dicts with the daily clearness
    y (0..1), the cloud logit, the temperature anomaly and the log wind."""
    rng_day = random.Random(f"{seed}/day")
    rng_hour = random.Random(f"{seed}/hour")
    rng_temp = random.Random(f"{seed}/temp")
    rng_wind = random.Random(f"{seed}/wind")
    states, day, z, y = [], None, rng_day.gauss(0, 1), 0.5
    e, anom, lw = rng_hour.gauss(0, 1), rng_temp.gauss(0, 2.5), rng_wind.gauss(0, 0.45)
    for t in times:
        d = math.floor((t.timestamp() / 3600 + lon / 15) / 24)   # local solar day
        if d != day:
            if day is not None:
                z = DAY_PHI * z + math.sqrt(1 - DAY_PHI ** 2) * rng_day.gauss(0, 1)
            day = d
            kc = daily_kc(phi_cdf(z), summer_factor(t, lat))
            y = (kc - KC_MIN) / (KC_MAX - KC_MIN)
        e = HOUR_PHI * e + math.sqrt(1 - HOUR_PHI ** 2) * rng_hour.gauss(0, 1)
        anom = 0.985 * anom + 2.5 * math.sqrt(1 - 0.985 ** 2) * rng_temp.gauss(0, 1)
        lw = 0.93 * lw + 0.45 * math.sqrt(1 - 0.93 ** 2) * rng_wind.gauss(0, 1)
        states.append({"y": y, "cloud": logit(y) + hourly_sd(y) * e, "anom": anom, "lw": lw})
    return states


def blend(a, b, w):
    """State a*(1-w) + b*w, key by key."""
    return {k: a[k] * (1 - w) + b[k] * w for k in a}


def diurnal_shape(hour):
    """-1 at 06 solar time, +1 at 15, smooth and asymmetric (slow evening cooling)."""
    if 6 <= hour < 15:
        return -math.cos(math.pi * (hour - 6) / 9)
    return math.cos(math.pi * ((hour - 15) % 24) / 15)


def air_temperature(t, st, lat, lon):
    """2-m air temperature (C): season + cloud-damped diurnal cycle + anomaly."""
    summer = summer_factor(t, lat)
    season = (27 - 0.3 * abs(lat)) + min(0.24 * abs(lat), 14) * summer_lagged(t, lat)
    amplitude = 2.0 + 6.0 * st["y"]
    return season + amplitude * diurnal_shape(solar_hour(t, lon)) + st["anom"] \
        + 2.5 * (st["y"] - 0.7) * summer


def summer_lagged(t, lat):
    """Seasonal temperature cycle, peaking about 4 weeks after the solstice."""
    doy = t.timetuple().tm_yday
    return math.copysign(1.0, lat or 1.0) * math.cos(2 * math.pi * (doy - 200) / 365.25)


def wind_speed(t, st, lon):
    """10-m wind speed (m/s): log-normal AR(1), windier afternoons and cloudy days."""
    lw = st["lw"] + 0.15 * diurnal_shape(solar_hour(t, lon)) + 0.3 * (0.7 - st["y"])
    return max(0.1, 2.3 * math.exp(lw))


# ---------------------------------------------------------------- one sample
def sample(t, st, args, normal, rng):
    """Everything at instant t given the weather state st (noise from rng)."""
    elev, sun = sun_position(t, args.lat, args.lon)
    t_air = air_temperature(t, st, args.lat, args.lon)
    wind = wind_speed(t, st, args.lon)
    noise = rng.gauss(0, 1)   # drawn every hour, so the stream stays aligned
    out = {"h_sun": max(elev, 0.0), "t2m": t_air, "ws": wind,
           "gb": 0.0, "gd": 0.0, "gr": 0.0, "g": 0.0, "p": 0.0, "kc": None}
    if round(elev, 2) <= 0:   # night, also as written (H_sun 0.00)
        out["h_sun"] = 0.0
        return out
    cosz = sun[2]
    i0 = extraterrestrial(t)
    ghi_cs, dni_cs, _ = ineichen(cosz, t, args.elevation)
    kc = KC_MIN + (KC_MAX - KC_MIN) * sigmoid(st["cloud"] + SUBHOURLY * hourly_sd(st["y"]) * noise)
    ghi = kc * ghi_cs
    dni, dhi = erbs(ghi, cosz, i0)
    dni = min(dni, dni_cs)
    dhi = ghi - dni * cosz
    gb, gd, gr = hay_davies(ghi, dni, dhi, sun, normal, i0)
    g = gb + gd + gr
    out.update(gb=gb, gd=gd, gr=gr, g=g, p=pv_power(g, t_air, wind, args.kwp), kc=kc)
    return out


def clear_sky_poa(t, args):
    """Clear-sky plane-of-array irradiance (W/m2) at t, for checks."""
    elev, sun = sun_position(t, args.lat, args.lon)
    if elev <= 0:
        return 0.0
    ghi, dni, dhi = ineichen(sun[2], t, args.elevation)
    return sum(hay_davies(ghi, dni, dhi, sun, plane_normal(args.slope, args.azimuth),
                          extraterrestrial(t)))


# ---------------------------------------------------------------- Int rows
def pick_int_runs(rows, seed):
    """Choose runs of 1-3 daylight rows (about INT_FRACTION of daylight hours)."""
    rng = random.Random(f"{seed}/int")
    day = [i for i in range(1, len(rows) - 1) if rows[i]["h_sun"] > 0]
    target = round(INT_FRACTION * len(day))
    marked, runs, tries = set(), [], 0
    while sum(len(r) for r in runs) < target and tries < 10000:
        tries += 1
        start, k = rng.choice(day), rng.randint(1, 3)
        run = range(start, start + k)
        if run[-1] + 1 >= len(rows) or any(rows[i]["h_sun"] <= 0 for i in run):
            continue
        if any(i in marked for i in range(start - 1, start + k + 1)):
            continue
        marked.update(run)
        runs.append(run)
    return runs


def reconstruct(rows, runs):
    """Replace P and irradiances of each run by interpolation between its neighbours."""
    for run in runs:
        before, after = rows[run[0] - 1], rows[run[-1] + 1]
        for j, i in enumerate(run, start=1):
            w = j / (len(run) + 1)
            for key in ("p", "g", "gb", "gd", "gr"):
                rows[i][key] = (1 - w) * before[key] + w * after[key]
            rows[i]["int"] = 1


# ---------------------------------------------------------------- output
def f2(x):
    """Two decimals, never '-0.00'."""
    return f"{round(x, 2) + 0.0:.2f}"


def short(x):
    """A number as PVGIS writes settings: 35, 4.2, 1.0."""
    return f"{x:.1f}" if round(x, 1) == x else f"{x:g}"


def pvgis_header(args):
    return [
        f"Latitude (decimal degrees):\t{args.lat:.3f}",
        f"Longitude (decimal degrees):\t{args.lon:.3f}",
        f"Elevation (m):\t{args.elevation:.0f}",
        "Radiation database:\tPVGIS-SARAH2",
        "",
        "",
        f"Slope: {args.slope:g} deg. ",
        f"Azimuth: {args.azimuth:g} deg. ",
        f"Nominal power of the PV system (c-Si) (kWp):\t{short(args.kwp)}",
        f"System losses (%):\t{SYSTEM_LOSSES * 100:.1f}",
    ]


FOOTER_P = "P: PV system power (W)"
FOOTER_G = {
    "G(i)": "G(i): Global irradiance on the inclined plane (plane of the array) (W/m2)",
    "Gb(i)": "Gb(i): Beam (direct) irradiance on the inclined plane (plane of the array) (W/m2)",
    "Gd(i)": "Gd(i): Diffuse irradiance on the inclined plane (plane of the array) (W/m2)",
    "Gr(i)": "Gr(i): Reflected irradiance on the inclined plane (plane of the array) (W/m2)",
}
FOOTER_REST = [
    "H_sun: Sun height (degree)",
    "T2m: 2-m air temperature (degree Celsius)",
    "WS10m: 10-m total wind speed (m/s)",
    "Int: 1 means solar radiation values are reconstructed",
    "",
    "PVGIS (c) European Union, 2001-2024",
]


def write_pvgis(path, rows, args, components):
    """A PVGIS seriescalc hourly CSV (CRLF line ends, as PVGIS writes)."""
    gcols = ["Gb(i)", "Gd(i)", "Gr(i)"] if components else ["G(i)"]
    lines = pvgis_header(args) + [",".join(["time", "P"] + gcols + ["H_sun", "T2m", "WS10m", "Int"])]
    for r in rows:
        g = [f2(r["gb"]), f2(r["gd"]), f2(r["gr"])] if components else [f2(r["g"])]
        lines.append(",".join([r["t"].strftime("%Y%m%d:%H%M"), f2(r["p"])] + g +
                              [f2(r["h_sun"]), f2(r["t2m"]), f2(r["ws"]), f"{r['int']:.1f}"]))
    lines += ["", FOOTER_P] + [FOOTER_G[c] for c in gcols] + FOOTER_REST
    with open(path, "w", newline="") as f:
        f.write("\r\n".join(lines) + "\r\n")


def write_generic(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["timestamp", "power_kw", "temperature"])
        for r in rows:
            w.writerow([r["t"].strftime("%Y-%m-%dT%H:%M:%SZ"), f"{r['p'] / 1000:.4f}", f2(r["t2m"])])


# ---------------------------------------------------------------- main
def hours(start_year, years):
    """Top-of-hour UTC instants of the whole years."""
    t = dt.datetime(start_year, 1, 1, tzinfo=dt.timezone.utc)
    end = dt.datetime(start_year + years, 1, 1, tzinfo=dt.timezone.utc)
    out = []
    while t < end:
        out.append(t)
        t += dt.timedelta(hours=1)
    return out


def simulate(args):
    """Rows at HH:10 (for PVGIS) and at HH:00 (generic) sharing one weather history."""
    tops = hours(args.start_year, args.years)
    tens = [t + dt.timedelta(minutes=10) for t in tops]
    states = weather_states(tens, args.lat, args.lon, args.seed)
    normal = plane_normal(args.slope, args.azimuth)
    rng10, rng00 = random.Random(f"{args.seed}/noise10"), random.Random(f"{args.seed}/noise00")
    pvgis, generic = [], []
    for i, (t10, t00) in enumerate(zip(tens, tops)):
        pvgis.append(dict(sample(t10, states[i], args, normal, rng10), t=t10, int=0))
        st00 = blend(states[max(i - 1, 0)], states[i], 5 / 6)   # :00 lies 50 min after the last :10
        generic.append(dict(sample(t00, st00, args, normal, rng00), t=t00))
    return pvgis, generic


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--years", type=int, default=3)
    ap.add_argument("--start-year", type=int, default=2019)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--lat", type=float, default=40.42)
    ap.add_argument("--lon", type=float, default=-3.70)
    ap.add_argument("--elevation", type=float, default=667, help="site elevation, m")
    ap.add_argument("--kwp", type=float, default=4.2)
    ap.add_argument("--slope", type=float, default=35, help="tilt, degrees from horizontal")
    ap.add_argument("--azimuth", type=float, default=0, help="PVGIS convention: 0 south, 90 west, -90 east")
    return ap.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    pvgis, generic = simulate(args)
    reconstruct(pvgis, pick_int_runs(pvgis, args.seed))
    os.makedirs(args.out, exist_ok=True)
    write_pvgis(os.path.join(args.out, "pvgis-gi.csv"), pvgis, args, components=False)
    write_pvgis(os.path.join(args.out, "pvgis-comp.csv"), pvgis, args, components=True)
    write_generic(os.path.join(args.out, "generic.csv"), generic)


if __name__ == "__main__":
    main()
