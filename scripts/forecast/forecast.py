#!/usr/bin/python3
"""Forecasts a PV plant's next hours with a model exported by `spottrain ckpt export`, without
spottrain: the same numbers as `spottrain forecast`, from Python and PyTorch alone.

usage: forecast.py EXPORT.safetensors HISTORY.csv [--at TIME] [--columns timestamp,power_kw] [--watts]

EXPORT.safetensors is what `spottrain ckpt export RUN_DIR --out EXPORT.safetensors` writes for an
LSTM run: the weights, and in its __metadata__ the architecture (model_spec) and everything that
turns a PV history into the network's inputs and its outputs back into kW (preprocessing: the
plant, its clear-sky model, the features and their normalisation, the climatology and the CLIPER
weights).

HISTORY.csv is the plant's hourly history, either
  - a CSV with a header row: a time column and a power column (named by --columns, default
    timestamp,power_kw; kW, or W with --watts) and, if the model reads them, temperature
    (temperature, temp_air or t2m, degrees C), irradiance (irradiance, ghi or poa, W/m2) and cloud
    cover (cloud or cloud_cover, fraction) columns, names matched case-insensitively. Timestamps
    are e.g. 2024-06-01T06:00:00Z or 2024-06-01 06:00 (no zone: UTC), one row per hour. Or
  - a PVGIS hourly export (seriescalc, pvcalculation=1): P in W, G(i) or Gb(i)+Gd(i)+Gr(i), T2m,
    H_sun, Int, times YYYYMMDD:HHMM in UTC, each row standing for the hour that contains it.
The history must be gapless (spottrain fills short gaps; this script refuses them) and cover the
model's lookback hours before the forecast.

--at TIME is the first hour to forecast (default the hour after the history's last). The output,
on standard output, is CSV: timestamp (UTC, the hour's start), forecast_kw (the model),
clearsky_kw (the plant's clear-sky power) and cliper_kw (the CLIPER baseline), as spottrain
forecast writes it. Errors are one line on standard error, with exit status 2.

The functions below mirror data/solar of spottrain (names in comments); geometry is float64 as in
Go, the network float32. Needs only the standard library and torch.
"""

import argparse
import csv
import datetime as dt
import json
import math
import re
import struct
import sys

import torch
from torch import nn

HOUR = 3600  # seconds
NS = 10**9

# --- The export (ckpt export; cmd/spottrain/testdata/forecast_safetensors.py imports these) -------

DTYPES = {"F32": torch.float32, "F64": torch.float64, "F16": torch.float16, "BF16": torch.bfloat16,
          "I64": torch.int64}


class Refusal(Exception):
    """An input this script cannot forecast from; printed as one line."""


def read_safetensors(path):
    """Returns the state dict and the metadata of a .safetensors file."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise Refusal(f"{path}: {e.strerror}") from e
    if len(raw) < 8:
        raise Refusal(f"{path}: not a safetensors file")
    (n,) = struct.unpack("<Q", raw[:8])
    try:
        header = json.loads(raw[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise Refusal(f"{path}: not a safetensors file ({e})") from e
    metadata = header.pop("__metadata__", {})
    data = raw[8 + n:]
    state = {}
    for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"]):
        begin, end = info["data_offsets"]
        dtype = DTYPES[info["dtype"]]
        if begin == end:
            state[name] = torch.empty(info["shape"], dtype=dtype)
        else:
            state[name] = torch.frombuffer(bytearray(data[begin:end]), dtype=dtype).reshape(info["shape"])
    return state, metadata


class Forecaster(nn.Module):
    """torch/shim.cc's LSTMForecaster: lstm, then the head on the last step's output (a
    Linear(hidden, horizon)) or, with step_head, on each of the last horizon steps' outputs (a
    Linear(hidden, 1))."""

    def __init__(self, spec):
        super().__init__()
        layers = spec["layers"]
        self.horizon = spec["horizon"]
        self.step_head = spec.get("step_head", False)
        self.lstm = nn.LSTM(spec["inputs"], spec["hidden"], layers, batch_first=True,
                            dropout=spec.get("dropout", 0.0) if layers > 1 else 0.0)
        self.drop = nn.Dropout(spec.get("dropout", 0.0))
        self.head = nn.Linear(spec["hidden"], 1 if self.step_head else self.horizon)

    def forward(self, x):
        out, _ = self.lstm(x)
        if self.step_head:
            return self.head(self.drop(out[:, -self.horizon:])).squeeze(-1)
        return self.head(self.drop(out[:, -1]))


def load_export(path):
    """Returns the network (eval mode) and the preprocessing document of an export."""
    state, metadata = read_safetensors(path)
    if "model_spec" not in metadata:
        raise Refusal(f"{path} has no model_spec in its metadata: not an export of spottrain ckpt export")
    spec = json.loads(metadata["model_spec"])
    if spec.get("kind") != "lstm":
        raise Refusal(f"{path} holds a {spec.get('kind')} model, not a forecaster: forecasts need an LSTM run")
    if "preprocessing" not in metadata:
        raise Refusal(f"{path} has no preprocessing in its metadata: export it again with a newer spottrain")
    prep = json.loads(metadata["preprocessing"])
    if prep.get("version") != 1 or prep.get("clearsky_model") != "meinel-isotropic-losses14":
        raise Refusal(f"{path}: preprocessing version {prep.get('version')} with clear-sky model "
                      f"{prep.get('clearsky_model')!r}; this script reads version 1, meinel-isotropic-losses14")
    net = Forecaster(spec)
    net.load_state_dict(state, strict=True)
    net.eval()
    return net, prep


# --- Times ----------------------------------------------------------------------------------------
# A time is an int of nanoseconds since the Unix epoch, UTC (Go's time.Time to the nanosecond).

def utc(ns):
    """The datetime of ns (whole microseconds) and its nanoseconds within the second."""
    sec, frac = divmod(ns, NS)
    return dt.datetime.fromtimestamp(sec, dt.timezone.utc), frac


def stamp(ns):
    """Go's t.Format(time.RFC3339) of a UTC time with whole seconds."""
    return utc(ns)[0].strftime("%Y-%m-%dT%H:%M:%SZ")


def days_in_year(year):  # daysInYear
    return 366 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 365


# CSV timestamps (data/solar/csv.go csvTimeLayouts): a zone only after seconds; none means UTC.
TIME_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})([T ])(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})?)?$")


def parse_time(s):
    """parseCSVTime: the ns of a timestamp, or None."""
    m = TIME_RE.match(s.strip())
    if not m:
        return None
    y, mo, d, sep, h, mi, sec, frac, zone = m.groups()
    if zone and sec is None:
        return None
    try:
        t = dt.datetime(int(y), int(mo), int(d), int(h), int(mi), int(sec or 0), tzinfo=dt.timezone.utc)
    except ValueError:
        return None
    offset = 0
    if zone and zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        offset = sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    ns = (int(t.timestamp()) - offset) * NS
    if frac:
        ns += int((frac[1:] + "000000000")[:9])
    return ns


# --- The clear-sky model (data/solar/geometry.go, clearsky.go), float64 ---------------------------

DEG = math.pi / 180
MEINEL_I0 = 1353.0
DIFFUSE_FRAC = 0.1
ALBEDO = 0.2
SYSTEM_LOSSES = 0.14


def sun_at(ns, lat_deg, lon_deg):
    """SunAt: (declination°, equation of time min, hour angle°, elevation°) at time ns."""
    u, frac = utc(ns)
    hour = u.hour + u.minute / 60 + (u.second + frac / 1e9) / 3600
    yday = u.timetuple().tm_yday
    g = 2 * math.pi / days_in_year(u.year) * ((yday - 1) + (hour - 12) / 24)
    dec = (0.006918 - 0.399912 * math.cos(g) + 0.070257 * math.sin(g)
           - 0.006758 * math.cos(2 * g) + 0.000907 * math.sin(2 * g)
           - 0.002697 * math.cos(3 * g) + 0.00148 * math.sin(3 * g))
    eot = 229.18 * (0.000075 + 0.001868 * math.cos(g) - 0.032077 * math.sin(g)
                    - 0.014615 * math.cos(2 * g) - 0.040849 * math.sin(2 * g))
    true_solar_min = hour * 60 + eot + 4 * lon_deg
    ha = math.fmod(true_solar_min / 4 - 180, 360)  # Go's math.Mod: the sign of x
    if ha < -180:
        ha += 360
    elif ha >= 180:
        ha -= 360
    lat = lat_deg * DEG
    sin_el = math.sin(lat) * math.sin(dec) + math.cos(lat) * math.cos(dec) * math.cos(ha * DEG)
    return dec / DEG, eot, ha, math.asin(max(-1.0, min(1.0, sin_el))) / DEG


def clear_sky(ns, lat_deg, lon_deg):
    """ClearSky: (GHI, DNI) in W/m2 (its POA is not needed here)."""
    _, _, _, elevation = sun_at(ns, lat_deg, lon_deg)
    if elevation <= 0:
        return 0.0, 0.0
    zenith = 90 - elevation
    cos_z = math.sin(elevation * DEG)
    air_mass = 1 / (cos_z + 0.50572 * math.pow(96.07995 - zenith, -1.6364))
    dni = MEINEL_I0 * math.pow(0.7, math.pow(air_mass, 0.678))
    dhi = DIFFUSE_FRAC * dni
    return dni * cos_z + dhi, dni


class Plant:
    """solar.Plant: site, plane, capacity and sample offset, from the preprocessing's plant."""

    def __init__(self, doc):
        self.lat = doc["site"]["Latitude"]
        self.lon = doc["site"]["Longitude"]
        self.tilt = doc["plane"]["tilt_deg"]
        self.azimuth = doc["plane"]["azimuth_deg"]
        self.capacity_kw = doc["capacity_kw"]
        self.offset_ns = doc.get("sample_offset_ns", 0)

    def clearsky_kw(self, hour):
        """Plant.ClearSkyKW of the hour starting at hour (ns)."""
        return self.capacity_kw * self.clearsky_poa(hour + self.offset_ns) / 1000 * (1 - SYSTEM_LOSSES)

    def elevation(self, hour):
        """Plant.Elevation: the sun's elevation at hour + the sample offset."""
        return sun_at(hour + self.offset_ns, self.lat, self.lon)[3]

    def clearsky_poa(self, ns):
        """Plant.clearSkyPOA."""
        dec, _, ha, elevation = sun_at(ns, self.lat, self.lon)
        if elevation <= 0:
            return 0.0
        ghi, dni = clear_sky(ns, self.lat, self.lon)
        dhi = ghi - dni * math.sin(elevation * DEG)
        cos_tilt = math.cos(self.tilt * DEG)
        return (dni * max(0.0, self.incidence_cos(dec, ha)) + dhi * (1 + cos_tilt) / 2
                + ghi * ALBEDO * (1 - cos_tilt) / 2)

    def incidence_cos(self, dec_deg, ha_deg):
        """Plant.incidenceCos."""
        lat, dec, ha = self.lat * DEG, dec_deg * DEG, ha_deg * DEG
        up = math.sin(lat) * math.sin(dec) + math.cos(lat) * math.cos(dec) * math.cos(ha)
        east = -math.cos(dec) * math.sin(ha)
        north = math.cos(lat) * math.sin(dec) - math.sin(lat) * math.cos(dec) * math.cos(ha)
        tilt, az = self.tilt * DEG, self.azimuth * DEG
        return up * math.cos(tilt) - north * math.sin(tilt) * math.cos(az) - east * math.sin(tilt) * math.sin(az)


# --- The history (data/solar/csv.go, pvgis.go, open.go) -------------------------------------------

OPTIONAL = {  # feature name -> the CSV column names that give it
    "irradiance": ("irradiance", "ghi", "poa"),
    "temperature": ("temperature", "temp_air", "t2m"),
    "cloud": ("cloud", "cloud_cover"),
}


class History:
    """solar.Series, as far as a forecast reads it: hourly times (ns), power (kW), the optional
    columns by feature name, PVGIS' sun height and estimated (Int = 1) flags, and the site."""

    def __init__(self, path):
        self.path = path
        self.times, self.power = [], []
        self.columns = {}  # feature name -> values
        self.sun_height = None
        self.estimated = None
        self.site = None  # (lat, lon) where the file says
        self.lines = []  # file line of each hour, for messages

    def add(self, line, t, power, values):
        """builder.add, without gap filling: rows hourly, in order, power >= 0."""
        if power < 0:
            raise Refusal(f"{self.path}:{line}: negative power {power}")
        if self.times:
            d = t - self.times[-1]
            if d != HOUR * NS:
                what = "duplicate timestamp" if d == 0 else "a gap" if d > HOUR * NS and d % (HOUR * NS) == 0 else "not hourly"
                raise Refusal(f"{self.path}:{line}: {stamp(t)} follows {stamp(self.times[-1])} at line "
                              f"{self.lines[-1]}: {what}; this script needs one row per hour, without gaps")
        self.times.append(t)
        self.power.append(power)
        self.lines.append(line)
        for name, v in values.items():
            self.columns.setdefault(name, []).append(v)


def number(path, line, column, field):
    """builder.parseNumber."""
    try:
        v = float(field.strip())
    except ValueError:
        raise Refusal(f"{path}:{line}: column {column}: cannot parse {field!r} as a number") from None
    if math.isnan(v) or math.isinf(v):
        raise Refusal(f"{path}:{line}: column {column}: {v} is not a finite number")
    return v


def is_pvgis(lines):
    """sniffPVGIS."""
    for i, text in enumerate(lines[:40]):
        if (i == 0 and text.startswith("Latitude (decimal degrees)")) or text.startswith("time,P,"):
            return True
    return False


def read_history(path, time_column, power_column, watts):
    """Open: a PVGIS export or a generic CSV."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            text = f.read()
    except OSError as e:
        raise Refusal(f"{path}: {e.strerror}") from e
    except UnicodeDecodeError:
        raise Refusal(f"{path}: not a UTF-8 text file") from None
    lines = text.splitlines()
    if is_pvgis(lines):
        return read_pvgis(path, lines)
    return read_csv(path, lines, time_column, power_column, watts)


def read_csv(path, lines, time_column, power_column, watts):
    """ReadCSV, without gap filling."""
    h = History(path)
    rows = [(n, rec) for n, rec in enumerate(csv.reader(lines, skipinitialspace=True), 1) if rec]
    if not rows:
        raise Refusal(f"{path}: empty file: want a header row with columns {time_column!r} and {power_column!r}")
    header_line, header = rows[0]
    header = [name.strip() for name in header]
    lower = [name.lower() for name in header]
    index = {}
    for role, names in [("time", (time_column,)), ("power", (power_column,))] + list(OPTIONAL.items()):
        found = [i for i, name in enumerate(lower) if name in [n.lower() for n in names]]
        if len(found) > 1:
            raise Refusal(f"{path}:{header_line}: columns {header[found[0]]!r} and {header[found[1]]!r} hold the same quantity; keep one")
        if found:
            index[role] = found[0]
    for role, name in (("time", time_column), ("power", power_column)):
        if role not in index:
            raise Refusal(f"{path}:{header_line}: no {role} column {name!r} in header {','.join(header)!r} (see --columns)")
    for line, rec in rows[1:]:
        if len(rec) != len(header):
            raise Refusal(f"{path}:{line}: {len(rec)} fields, want {len(header)} as in the header")
        t = parse_time(rec[index["time"]])
        if t is None:
            raise Refusal(f"{path}:{line}: column {header[index['time']]}: cannot parse {rec[index['time']]!r} as a timestamp "
                          "(want e.g. 2006-01-02T15:04:05Z or 2006-01-02 15:04)")
        power = number(path, line, header[index["power"]], rec[index["power"]])
        if watts:
            power /= 1000
        values = {name: number(path, line, header[index[name]], rec[index[name]]) for name in OPTIONAL if name in index}
        if "cloud" in values and not 0 <= values["cloud"] <= 1:
            raise Refusal(f"{path}:{line}: column {header[index['cloud']]}: cloud cover {values['cloud']} outside [0, 1]")
        h.add(line, t, power, values)
    if not h.times:
        raise Refusal(f"{path}:{header_line}: no data rows after the header")
    return h


PVGIS_ROW = re.compile(r"^\d{8}:\d{4},")


def read_pvgis(path, lines):
    """readPVGIS, without gap filling: rows map to their hour's start."""
    h = History(path)
    meta, header = {}, None
    for line, text in enumerate(lines, 1):
        text = text.rstrip("\r")
        if header is None and text.startswith("time,"):
            header = [c.strip() for c in text.split(",")]
            if "P" not in header:
                raise Refusal(f"{path}:{line}: no column P in header {text!r}: export with PV calculation (pvcalculation=1)")
            h.sun_height = [] if "H_sun" in header else None
            h.estimated = [] if "Int" in header else None
            continue
        if header is None:
            key, sep, val = text.partition(":")
            key = key.strip().lower()
            if sep and (key.startswith("latitude") or key.startswith("longitude")):
                meta[key[:3]] = number(path, line, key, val)
            continue
        if text.strip() == "":
            break  # the footer follows
        t, power, values, sun, estimated = pvgis_row(path, line, text, header)
        h.add(line, t, power, values)
        if h.sun_height is not None:
            h.sun_height.append(sun)
        if h.estimated is not None:
            h.estimated.append(estimated)
    if header is None:
        raise Refusal(f"{path}: no header line starting with \"time,\": not a PVGIS hourly CSV export")
    if not h.times:
        raise Refusal(f"{path}: no data rows after the header")
    if "lat" in meta and "lon" in meta:
        h.site = (meta["lat"], meta["lon"])
    return h


def pvgis_row(path, line, text, header):
    """builder.pvgisRow: (hour, power kW, values by feature, sun height, estimated)."""
    fields = text.split(",")
    if len(fields) != len(header):
        raise Refusal(f"{path}:{line}: {len(fields)} fields, want {len(header)} as in the header")
    m = re.fullmatch(r"(\d{4})(\d{2})(\d{2}):(\d{2})(\d{2})", fields[0].strip())
    try:
        y, mo, d, hh, mi = map(int, m.groups())
        t = int(dt.datetime(y, mo, d, hh, mi, tzinfo=dt.timezone.utc).timestamp()) // HOUR * HOUR * NS
    except (AttributeError, ValueError):
        raise Refusal(f"{path}:{line}: column time: cannot parse {fields[0]!r} as a PVGIS time (YYYYMMDD:HHMM)") from None
    col = {name: i for i, name in enumerate(header)}
    get = lambda name: number(path, line, name, fields[col[name]])  # noqa: E731
    values = {}
    if "G(i)" in col:
        values["irradiance"] = get("G(i)")
    elif all(c in col for c in ("Gb(i)", "Gd(i)", "Gr(i)")):
        values["irradiance"] = 0.0
        for c in sorted(("Gb(i)", "Gd(i)", "Gr(i)"), key=col.get):  # summed in file order, as Go does
            values["irradiance"] += get(c)
    if "T2m" in col:
        values["temperature"] = get("T2m")
    sun = get("H_sun") if "H_sun" in col else None
    estimated = get("Int") != 0 if "Int" in col else False
    return t, get("P") / 1000, values, sun, estimated


# --- The preprocessing (data/solar/prep.go, query.go) ---------------------------------------------

KNOWN_FEATURES = 6  # knownFeatures


class Prep:
    """solar.Preprocessing."""

    def __init__(self, doc):
        self.doc = doc
        self.plant = Plant(doc["plant"])
        self.lookback, self.horizon = doc["lookback_hours"], doc["horizon_hours"]
        self.features, self.mean, self.std = doc["features"], doc["mean"], doc["std"]
        self.target, self.future_inputs = doc["target"], doc["future_inputs"]
        self.max_k, self.climatology_table = doc["max_clearsky_index"], doc["climatology"]
        self.persistence_hours, self.cliper_weight = doc["persistence_hours"], doc["cliper_weight"]
        self.daylight_zenith = doc["daylight_zenith_deg"]

    def accepts(self, h):
        """Preprocessing.Accepts: the plant's site, and every column the network reads."""
        if h.site and (abs(h.site[0] - self.plant.lat) > 0.01 or abs(h.site[1] - self.plant.lon) > 0.01):
            raise Refusal(f"{h.path} is for a plant at {h.site[0]:.3f}°, {h.site[1]:.3f}°; the model was trained "
                          f"for one at {self.plant.lat:.3f}°, {self.plant.lon:.3f}°")
        for f in self.features:
            if f in OPTIONAL and f not in h.columns:
                raise Refusal(f"{h.path} has no {f} column, which the model reads")

    def derive(self, h):
        """Preprocessing.derive: clear-sky power, daylight and clear-sky index of every hour."""
        cs, daylight, k = [], [], []
        min_elevation = 90 - self.daylight_zenith
        for i, t in enumerate(h.times):
            c = self.plant.clearsky_kw(t)
            elevation = h.sun_height[i] if h.sun_height is not None else self.plant.elevation(t)
            day = elevation > min_elevation and c > 0
            cs.append(c)
            daylight.append(day)
            k.append(min(h.power[i] / c, self.max_k) if day else 0.0)
        return cs, daylight, k

    def climatology(self, t):
        """Preprocessing.climatology of the hour starting at t."""
        u = utc(t)[0]
        return self.climatology_table[u.month - 1][u.hour]

    def known_row(self, t):
        """Preprocessing.knownRow: the raw known-in-advance features of the hour starting at t."""
        u = utc(t + self.plant.offset_ns)[0]
        hour = u.hour + u.minute / 60
        day = 2 * math.pi * ((u.timetuple().tm_yday - 1) + hour / 24) / days_in_year(u.year)
        return [math.sin(2 * math.pi * hour / 24), math.cos(2 * math.pi * hour / 24), math.sin(day), math.cos(day),
                self.plant.clearsky_kw(t) / self.plant.capacity_kw, self.climatology(t)]

    def past_row(self, h, k, i):
        """Preprocessing.pastRow: the known features of hour i, then what was measured."""
        r = self.known_row(h.times[i])
        for f in self.features[KNOWN_FEATURES:]:
            if f == "observed":
                r.append(1.0)
            elif f in OPTIONAL:
                r.append(h.columns[f][i])
            elif f == "clearsky_index":
                r.append(k[i])
            elif f == "power":
                r.append(h.power[i] / self.plant.capacity_kw)
            else:
                raise Refusal(f"the model reads a feature {f!r} this script does not know")
        return r

    def future_row(self, t):
        """Preprocessing.futureRow: the known features of target hour t, the others at their mean."""
        r = self.known_row(t)
        for f, mean in zip(self.features[KNOWN_FEATURES:], self.mean[KNOWN_FEATURES:]):
            r.append(0.0 if f == "observed" else mean)
        return r

    def normalize(self, r):
        """Preprocessing.normalize, in float64 (float32 when it becomes a tensor)."""
        return [(v - m) / s for v, m, s in zip(r, self.mean, self.std)]

    def persistence(self, h, daylight, cs, start):
        """Preprocessing.persistence: (k, newest, ok) of the newest measured daylight hours."""
        power = csum = 0.0
        found, newest = 0, 0
        i = start - 1
        while i >= start - self.lookback and found < self.persistence_hours:
            if daylight[i] and not (h.estimated and h.estimated[i]):  # derived.scored
                if found == 0:
                    newest = i
                found += 1
                power += h.power[i]
                csum += cs[i]
            i -= 1
        if found == 0:
            return 0.0, 0, False
        return min(power / csum, self.max_k), newest, True

    def cliper(self, kp, newest, ok, i, t):
        """Preprocessing.cliper: CLIPER's clear-sky index for target hour i starting at t."""
        clim = self.climatology(t)
        if not ok:
            return clim
        rho = self.cliper_weight[min(i - newest, len(self.cliper_weight)) - 1]
        return rho * kp + (1 - rho) * clim

    def clamp_kw(self, kw, cs):
        """Preprocessing.clampKW."""
        return 0.0 if cs == 0 else max(0.0, min(kw, self.plant.capacity_kw))

    def to_kw(self, o, cs, kc):
        """Preprocessing.toKW of the network's output o (a float32, as a Python float)."""
        if cs == 0:
            return 0.0
        if self.target == "power":
            kw = o * self.plant.capacity_kw
        elif self.target == "clearsky_index":
            kw = o * cs
        else:  # cliper_residual
            kw = (o + kc) * cs
        return max(0.0, min(kw, self.plant.capacity_kw))

    def query(self, h, at):
        """Preprocessing.Query: (the input [1, steps, features], target times, clear-sky kW, CLIPER
        index, CLIPER kW) of the forecast from at (None: the hour after the history's last)."""
        self.accepts(h)
        last = h.times[-1]
        if at is None:
            at = last + HOUR * NS
        if at % (HOUR * NS) != 0:
            raise Refusal(f"forecast time {stamp(at - at % NS)} is not on the hour")
        frm = at - self.lookback * HOUR * NS
        if frm < h.times[0]:
            raise Refusal(f"{h.path} starts at {stamp(h.times[0])}: a forecast from {stamp(at)} needs the "
                          f"{self.lookback} hours from {stamp(frm)}")
        if at > last + HOUR * NS:
            raise Refusal(f"{h.path} ends at {stamp(last)}: a forecast from {stamp(at)} needs the "
                          f"{self.lookback} hours up to {stamp(at - HOUR * NS)}")
        start = (at - h.times[0]) // (HOUR * NS)
        cs, daylight, k = self.derive(h)
        kp, newest, ok = self.persistence(h, daylight, cs, start)
        times, clear, kcs, cliper_kw = [], [], [], []
        for j in range(self.horizon):
            t = at + j * HOUR * NS
            c = self.plant.clearsky_kw(t)
            kc = self.cliper(kp, newest, ok, start + j, t)
            times.append(t)
            clear.append(c)
            kcs.append(kc)
            cliper_kw.append(self.clamp_kw(kc * c, c))
        rows = [self.normalize(self.past_row(h, k, start - self.lookback + j)) for j in range(self.lookback)]
        if self.future_inputs:
            rows += [self.normalize(self.future_row(t)) for t in times]
        x = torch.tensor([rows], dtype=torch.float32)
        return x, times, clear, kcs, cliper_kw


# --- The command (cmd/spottrain/forecast.go) ------------------------------------------------------

def kw_string(kw):
    """kwString: strconv.FormatFloat(kw, 'g', 9, 64)."""
    return format(kw, ".9g")


def parse_at(s):
    """parseHour."""
    t = parse_time(s)
    if t is None or (" " in s.strip() and s.strip()[-1:] == "Z" or re.search(r" .*[+-]\d\d:\d\d$", s.strip())):
        raise Refusal(f"--at: cannot parse {s!r} as a time (want e.g. 2024-06-01T06:00:00Z or 2024-06-01 06:00)")
    return t


def forecast(args):
    """Writes the forecast CSV to stdout."""
    at = parse_at(args.at) if args.at else None
    columns = args.columns.split(",")
    if len(columns) != 2 or not all(c.strip() for c in columns):
        raise Refusal(f"--columns: want TIME,POWER (two column names), got {args.columns!r}")
    net, doc = load_export(args.export)
    prep = Prep(doc)
    h = read_history(args.history, columns[0].strip(), columns[1].strip(), args.watts)
    x, times, clear, kcs, cliper_kw = prep.query(h, at)
    with torch.no_grad():
        out = net(x)[0].tolist()
    rows = [[stamp(t), kw_string(prep.to_kw(o, c, kc)), kw_string(c), kw_string(ckw)]
            for t, o, c, kc, ckw in zip(times, out, clear, kcs, cliper_kw)]
    w = csv.writer(sys.stdout, lineterminator="\n")  # writeForecast
    w.writerow(["timestamp", "forecast_kw", "clearsky_kw", "cliper_kw"])
    w.writerows(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("export", metavar="EXPORT.safetensors", help="the file of spottrain ckpt export")
    ap.add_argument("history", metavar="HISTORY.csv", help="the plant's hourly history (CSV or PVGIS export)")
    ap.add_argument("--at", metavar="TIME", help="the first hour to forecast (default: after the history's last)")
    ap.add_argument("--columns", default="timestamp,power_kw", metavar="TIME,POWER",
                    help="the CSV's time and power columns (default timestamp,power_kw)")
    ap.add_argument("--watts", action="store_true", help="the CSV's power is in W, not kW")
    args = ap.parse_args()
    try:
        forecast(args)
    except Refusal as e:
        print(f"forecast.py: {e}", file=sys.stderr)
        sys.exit(2)
    except BrokenPipeError:  # a reader such as head stopped early
        sys.stderr.close()


if __name__ == "__main__":
    main()
