"""HID usage names as NUT prints them in ``Path:`` strings.

A usage is the full 32-bit value ``page << 16 | id``. :data:`STANDARD` holds the
Power Device (0x84) and Battery System (0x85) pages of "USB Usage Tables for
HID Power Devices" 1.0, spelled as NUT's usbhid-ups spells them (``SwitchOn/Off``,
``Maxerror``, ``iDevicename``). :data:`VENDOR_TABLES` holds the vendor names each
NUT subdriver adds; NUT resolves a name through the subdriver's table first,
then the standard one, and vendors give the same code different names (MGE,
Delta and Tripp Lite all use page 0xFFFF), so naming depends on the subdriver:

    parse(data, names=names_for("apc"))      # "UPS.PowerSummary.APCStatusFlag"
    parse(data, names=names_for("explore"))  # standard names only, like NUT's -x explore dumps

:data:`NAMES` (the default of ``descriptor.parse``, handy in tests) is the
standard table plus the APC, MGE, CPS and Tripp Lite names, first vendor winning
a shared code (:data:`VENDOR_ORDER`); a driver names paths with
``names_for(subdriver)``. :data:`USAGES` maps every known name, any vendor, to
its code (case-folded). Unknown usages print as 8 lowercase hex digits (``ff860060``), and the
index node of a vendor-type collection as ``[n]``.
"""

from __future__ import annotations

from collections.abc import Mapping

#: NUT's global table (libhid.c hid_usage_lkp): Power Device and Battery System pages
STANDARD: dict[int, str] = {
    **{0x00840000 | k: v for k, v in {
        0x00: "Undefined", 0x01: "iName", 0x02: "PresentStatus", 0x03: "ChangedStatus", 0x04: "UPS",
        0x05: "PowerSupply", 0x10: "BatterySystem", 0x11: "BatterySystemID", 0x12: "Battery",
        0x13: "BatteryID", 0x14: "Charger", 0x15: "ChargerID", 0x16: "PowerConverter",
        0x17: "PowerConverterID", 0x18: "OutletSystem", 0x19: "OutletSystemID", 0x1A: "Input",
        0x1B: "InputID", 0x1C: "Output", 0x1D: "OutputID", 0x1E: "Flow", 0x1F: "FlowID", 0x20: "Outlet",
        0x21: "OutletID", 0x22: "Gang", 0x23: "GangID", 0x24: "PowerSummary", 0x25: "PowerSummaryID",
        0x30: "Voltage", 0x31: "Current", 0x32: "Frequency", 0x33: "ApparentPower", 0x34: "ActivePower",
        0x35: "PercentLoad", 0x36: "Temperature", 0x37: "Humidity", 0x38: "BadCount",
        0x40: "ConfigVoltage", 0x41: "ConfigCurrent", 0x42: "ConfigFrequency",
        0x43: "ConfigApparentPower", 0x44: "ConfigActivePower", 0x45: "ConfigPercentLoad",
        0x46: "ConfigTemperature", 0x47: "ConfigHumidity",
        0x50: "SwitchOnControl", 0x51: "SwitchOffControl", 0x52: "ToggleControl",
        0x53: "LowVoltageTransfer", 0x54: "HighVoltageTransfer", 0x55: "DelayBeforeReboot",
        0x56: "DelayBeforeStartup", 0x57: "DelayBeforeShutdown", 0x58: "Test", 0x59: "ModuleReset",
        0x5A: "AudibleAlarmControl",
        0x60: "Present", 0x61: "Good", 0x62: "InternalFailure", 0x63: "VoltageOutOfRange",
        0x64: "FrequencyOutOfRange", 0x65: "Overload", 0x66: "OverCharged", 0x67: "OverTemperature",
        0x68: "ShutdownRequested", 0x69: "ShutdownImminent", 0x6B: "SwitchOn/Off", 0x6C: "Switchable",
        0x6D: "Used", 0x6E: "Boost", 0x6F: "Buck", 0x70: "Initialized", 0x71: "Tested",
        0x72: "AwaitingPower", 0x73: "CommunicationLost",
        0xFD: "iManufacturer", 0xFE: "iProduct", 0xFF: "iSerialNumber",
    }.items()},
    **{0x00850000 | k: v for k, v in {
        0x00: "Undefined", 0x01: "SMBBatteryMode", 0x02: "SMBBatteryStatus", 0x03: "SMBAlarmWarning",
        0x04: "SMBChargerMode", 0x05: "SMBChargerStatus", 0x06: "SMBChargerSpecInfo",
        0x07: "SMBSelectorState", 0x08: "SMBSelectorPresets", 0x09: "SMBSelectorInfo",
        0x10: "OptionalMfgFunction1", 0x11: "OptionalMfgFunction2", 0x12: "OptionalMfgFunction3",
        0x13: "OptionalMfgFunction4", 0x14: "OptionalMfgFunction5", 0x15: "ConnectionToSMBus",
        0x16: "OutputConnection", 0x17: "ChargerConnection", 0x18: "BatteryInsertion", 0x19: "Usenext",
        0x1A: "OKToUse", 0x1B: "BatterySupported", 0x1C: "SelectorRevision", 0x1D: "ChargingIndicator",
        0x28: "ManufacturerAccess", 0x29: "RemainingCapacityLimit", 0x2A: "RemainingTimeLimit",
        0x2B: "AtRate", 0x2C: "CapacityMode", 0x2D: "BroadcastToCharger", 0x2E: "PrimaryBattery",
        0x2F: "ChargeController",
        0x40: "TerminateCharge", 0x41: "TerminateDischarge", 0x42: "BelowRemainingCapacityLimit",
        0x43: "RemainingTimeLimitExpired", 0x44: "Charging", 0x45: "Discharging", 0x46: "FullyCharged",
        0x47: "FullyDischarged", 0x48: "ConditioningFlag", 0x49: "AtRateOK", 0x4A: "SMBErrorCode",
        0x4B: "NeedReplacement",
        0x60: "AtRateTimeToFull", 0x61: "AtRateTimeToEmpty", 0x62: "AverageCurrent", 0x63: "Maxerror",
        0x64: "RelativeStateOfCharge", 0x65: "AbsoluteStateOfCharge", 0x66: "RemainingCapacity",
        0x67: "FullChargeCapacity", 0x68: "RunTimeToEmpty", 0x69: "AverageTimeToEmpty",
        0x6A: "AverageTimeToFull", 0x6B: "CycleCount",
        0x80: "BattPackModelLevel", 0x81: "InternalChargeController", 0x82: "PrimaryBatterySupport",
        0x83: "DesignCapacity", 0x84: "SpecificationInfo", 0x85: "ManufacturerDate",
        0x86: "SerialNumber", 0x87: "iManufacturerName", 0x88: "iDevicename", 0x89: "iDeviceChemistry",
        0x8A: "ManufacturerData", 0x8B: "Rechargeable", 0x8C: "WarningCapacityLimit",
        0x8D: "CapacityGranularity1", 0x8E: "CapacityGranularity2", 0x8F: "iOEMInformation",
        0xC0: "InhibitCharge", 0xC1: "EnablePolling", 0xC2: "ResetToZero",
        0xD0: "ACPresent", 0xD1: "BatteryPresent", 0xD2: "PowerFail", 0xD3: "AlarmInhibited",
        0xD4: "ThermistorUnderRange", 0xD5: "ThermistorHot", 0xD6: "ThermistorCold",
        0xD7: "ThermistorOverRange", 0xD8: "VoltageOutOfRange", 0xD9: "CurrentOutOfRange",
        0xDA: "CurrentNotRegulated", 0xDB: "VoltageNotRegulated", 0xDC: "MasterMode",
        0xF0: "ChargerSelectorSupport", 0xF1: "ChargerSpec", 0xF2: "Level2", 0xF3: "Level3",
    }.items()},
}

#: per NUT subdriver (file stem of drivers/<name>-hid.c): the names it adds or overrides
VENDOR_TABLES: dict[str, dict[int, str]] = {
    'apc': {
        0xff860005: 'APCGeneralCollection', 0xff860006: 'APCEnvironment', 0xff860007: 'APCProbe1',
        0xff860008: 'APCProbe2', 0xff860016: 'APCBattReplaceDate', 0xff860019: 'APCBattCapBeforeStartup',
        0xff860042: 'APC_UPS_FirmwareRevision', 0xff860052: 'APCLineFailCause', 0xff860060: 'APCStatusFlag',
        0xff860061: 'APCSensitivity', 0xff860072: 'APCPanelTest', 0xff860076: 'APCShutdownAfterDelay',
        0xff860079: 'APC_USB_FirmwareRevision', 0xff86007c: 'APCDelayBeforeReboot',
        0xff86007d: 'APCDelayBeforeShutdown', 0xff86007e: 'APCDelayBeforeStartup',
        0x00850058: 'BUPHibernate', 0x00860012: 'BUPBattCapBeforeStartup',
        0x00860076: 'BUPDelayBeforeStartup', 0x00860010: 'BUPSelfTest',
    },
    'belkin': {
        0x00860026: 'BELKINConfig', 0x00860040: 'BELKINConfigVoltage', 0x00860042: 'BELKINConfigFrequency',
        0x00860043: 'BELKINConfigApparentPower', 0x00860044: 'BELKINConfigBatteryVoltage',
        0x00860045: 'BELKINConfigOverloadTransfer', 0x00860053: 'BELKINLowVoltageTransfer',
        0x00860054: 'BELKINHighVoltageTransfer', 0x0086005b: 'BELKINLowVoltageTransferMax',
        0x0086005c: 'BELKINLowVoltageTransferMin', 0x0086005d: 'BELKINHighVoltageTransferMax',
        0x0086005e: 'BELKINHighVoltageTransferMin', 0x00860027: 'BELKINControls',
        0x00860050: 'BELKINLoadOn', 0x00860051: 'BELKINLoadOff', 0x00860052: 'BELKINLoadToggle',
        0x00860055: 'BELKINDelayBeforeReboot', 0x00860056: 'BELKINDelayBeforeStartup',
        0x00860057: 'BELKINDelayBeforeShutdown', 0x00860058: 'BELKINTest',
        0x0086005a: 'BELKINAudibleAlarmControl', 0x00860029: 'BELKINDevice',
        0x00860074: 'BELKINVoltageSensitivity', 0x00860075: 'BELKINModelString',
        0x00860076: 'BELKINModelStringOffset', 0x0086007c: 'BELKINUPSType', 0x0086002a: 'BELKINPowerState',
        0x0086001a: 'BELKINInput', 0x0086001c: 'BELKINOutput', 0x00860010: 'BELKINBatterySystem',
        0x00860030: 'BELKINVoltage', 0x00860032: 'BELKINFrequency', 0x00860034: 'BELKINPower',
        0x00860035: 'BELKINPercentLoad', 0x00860036: 'BELKINTemperature', 0x00860039: 'BELKINCharge',
        0x0086006c: 'BELKINRunTimeToEmpty', 0x00860028: 'BELKINStatus', 0x00860022: 'BELKINBatteryStatus',
        0x00860021: 'BELKINPowerStatus',
    },
    'cps': {
        0xff0100d0: 'CPSFirmwareVersion', 0xff010043: 'CPSInputSensitivity',
    },
    'delta_ups': {
        0x00000000: 'DELTA1', 0xff000055: 'DELTA2', 0xffff0010: 'DeltaCustom', 0xffff0056: 'DELTA4',
        0xffff0057: 'DeltaConfigTransferLowMax', 0xffff0058: 'DeltaConfigTransferLowMin',
        0xffff0059: 'DeltaConfigTransferHighMax', 0xffff005a: 'DeltaConfigTransferHighMin',
        0xffff0060: 'DELTA9', 0xffff0061: 'DeltaConfigExternalBatteryPack', 0xffff0062: 'DELTA11',
        0xffff0063: 'DELTA12', 0xffff0064: 'DELTA13', 0xffff0065: 'DELTA14', 0xffff0066: 'DELTA15',
        0xffff0067: 'DELTA16', 0xffff0068: 'DELTA17', 0xffff0075: 'DeltaModelName', 0xffff0076: 'DELTA19',
        0xffff007c: 'DeltaUPSType', 0xffff007d: 'DELTA21', 0xffff0081: 'DeltaConfigStartPowerRestoreDelay',
        0xffff0091: 'DeltaOutputSource', 0xffff0092: 'DELTA24', 0xffff0093: 'DELTA25',
        0xffff0094: 'DELTA26', 0xffff0095: 'DELTA27', 0xffff0096: 'DELTA28', 0xffff0097: 'DELTA29',
        0xffff0098: 'DELTA30', 0xffff0099: 'DELTA31', 0xffff009a: 'DELTA32',
        0xffff009b: 'DeltaConfigSensitivity', 0xffff009c: 'DeltaConfigStartPowerRestore',
    },
    'ever': {
        0x00000000: 'EVER1', 0xff000000: 'EVER2', 0xff000001: 'EVER3', 0xff000002: 'EVER4',
        0xff000003: 'EVER5', 0xff000004: 'EVER6', 0xff000005: 'EVER7', 0xff000006: 'EVER8',
        0xff000007: 'EVER9', 0xff000008: 'EVER10', 0xff000009: 'EVER11', 0xff000010: 'EVER12',
        0xff000011: 'EVER13', 0xff000012: 'EVER14', 0xff000013: 'EVER15', 0xff000014: 'EVER16',
        0xff000015: 'EVER17', 0xff000016: 'EVER18', 0xff000017: 'EVER19', 0xff000018: 'EVER20',
        0xff000019: 'EVER21', 0xff00001a: 'EVER22', 0xff00001b: 'EVER23', 0xff00001c: 'EVER24',
        0xff00001d: 'EVER25', 0xff00001e: 'EVER26', 0xff00001f: 'EVER27', 0xff000020: 'EVER28',
        0xff000021: 'EVER29', 0xff000022: 'EVER30', 0xff000023: 'EVER31', 0xff000030: 'EVER32',
        0xff000031: 'EVER33', 0xff000032: 'EVER34', 0xff000033: 'EVER35', 0xff000034: 'EVER36',
        0xff000035: 'EVER37', 0xff000036: 'EVER38', 0xff000037: 'EVER39', 0xff000038: 'EVER40',
        0xff000039: 'EVER41', 0xff000040: 'EVER42', 0xff000041: 'EVER43', 0xff000042: 'EVER44',
        0xff000043: 'EVER45', 0xff000044: 'EVER46', 0xff000045: 'EVER47', 0xff000046: 'EVER48',
        0xff000050: 'EVER49', 0xff000051: 'EVER50', 0xff000052: 'EVER51', 0xff000053: 'EVER52',
        0xff000054: 'EVER53', 0xff000060: 'EVER54', 0xff000061: 'EVER55', 0xff000062: 'EVER56',
        0xff000063: 'EVER57', 0xff000064: 'EVER58', 0xff000066: 'EVER59', 0xff000067: 'EVER60',
        0xff000068: 'EVER61', 0xff000069: 'EVER62', 0xff00006a: 'EVER63', 0xff00006b: 'EVER64',
        0xff00006c: 'EVER65', 0xff00006d: 'EVER66', 0xff00006e: 'EVER67', 0xff00006f: 'EVER68',
        0xff000070: 'EVER69', 0xff000071: 'EVER70', 0xff000072: 'EVER71', 0xff000073: 'EVER72',
        0xff000074: 'EVER73', 0xff000075: 'EVER74', 0xff000076: 'EVER75', 0xff000077: 'EVER76',
        0xff000078: 'EVER77', 0xff000079: 'EVER78', 0xff00007a: 'EVER79', 0xff00007b: 'EVER80',
        0xff00007c: 'EVER81', 0xff00007d: 'EVER82', 0xff00007e: 'EVER83', 0xff00007f: 'EVER84',
        0xff000080: 'EVER85', 0xff000081: 'EVER86', 0xff000082: 'EVER87', 0xff000083: 'EVER88',
        0xff000084: 'EVER89', 0xff000085: 'EVER90', 0xff000086: 'EVER91', 0xff000087: 'EVER92',
        0xff000088: 'EVER93', 0xff000089: 'EVER94', 0xff00008a: 'EVER95', 0xff00008b: 'EVER96',
        0xff000090: 'EVER97', 0xff000091: 'EVER98', 0xff000092: 'EVER99', 0xff000093: 'EVER100',
        0xff000094: 'EVER101', 0xff000095: 'EVER102', 0xff000096: 'EVER103', 0xff000097: 'EVER104',
    },
    'mge': {
        0xffff0000: 'Undefined', 0xffff0001: 'STS', 0xffff0002: 'Environment', 0xffff0003: 'Statistic',
        0xffff0004: 'StatisticSystem', 0xffff0005: 'USB', 0xffff0010: 'Phase', 0xffff0011: 'PhaseID',
        0xffff0012: 'Chopper', 0xffff0013: 'ChopperID', 0xffff0014: 'Inverter', 0xffff0015: 'InverterID',
        0xffff0016: 'Rectifier', 0xffff0017: 'RectifierID', 0xffff0018: 'LCMSystem',
        0xffff0019: 'LCMSystemID', 0xffff001a: 'LCMAlarm', 0xffff001b: 'LCMAlarmID',
        0xffff001c: 'HistorySystem', 0xffff001d: 'HistorySystemID', 0xffff001e: 'Event',
        0xffff001f: 'EventID', 0xffff0020: 'CircuitBreaker', 0xffff0021: 'TransferForbidden',
        0xffff0022: 'OverallAlarm', 0xffff0023: 'Dephasing', 0xffff0024: 'BypassBreaker',
        0xffff0025: 'PowerModule', 0xffff0026: 'PowerRate', 0xffff0027: 'PowerSource',
        0xffff0028: 'CurrentPowerSource', 0xffff0029: 'RedundancyLevel', 0xffff002a: 'RedundancyLost',
        0xffff002b: 'NotificationStatus', 0xffff002c: 'ProtectionLost', 0xffff002d: 'ConfigurationFailure',
        0xffff002e: 'CompatibilityFailure', 0xffff0040: 'SwitchType', 0xffff0041: 'ConverterType',
        0xffff0042: 'FrequencyConverterMode', 0xffff0043: 'AutomaticRestart', 0xffff0044: 'ForcedReboot',
        0xffff0045: 'TestPeriod', 0xffff0046: 'EnergySaving', 0xffff0047: 'StartOnBattery',
        0xffff0048: 'Schedule', 0xffff0049: 'DeepDischargeProtection', 0xffff004a: 'ShortCircuit',
        0xffff004b: 'ExtendedVoltageMode', 0xffff004c: 'SensitivityMode',
        0xffff004d: 'RemainingCapacityLimitSetting', 0xffff004e: 'ExtendedFrequencyMode',
        0xffff004f: 'FrequencyConverterModeSetting', 0xffff0050: 'LowVoltageBoostTransfer',
        0xffff0051: 'HighVoltageBoostTransfer', 0xffff0052: 'LowVoltageBuckTransfer',
        0xffff0053: 'HighVoltageBuckTransfer', 0xffff0054: 'OverloadTransferEnable',
        0xffff0055: 'OutOfToleranceTransferEnable', 0xffff0056: 'ForcedTransferEnable',
        0xffff0057: 'LowVoltageBypassTransfer', 0xffff0058: 'HighVoltageBypassTransfer',
        0xffff0059: 'FrequencyRangeBypassTransfer', 0xffff005a: 'LowVoltageEcoTransfer',
        0xffff005b: 'HighVoltageEcoTransfer', 0xffff005c: 'FrequencyRangeEcoTransfer',
        0xffff005d: 'ShutdownTimer', 0xffff005e: 'StartupTimer', 0xffff005f: 'RestartLevel',
        0xffff0060: 'PhaseOutOfRange', 0xffff0061: 'CurrentLimitation', 0xffff0062: 'ThermalOverload',
        0xffff0063: 'SynchroSource', 0xffff0064: 'FuseFault', 0xffff0065: 'ExternalProtectedTransfert',
        0xffff0066: 'ExternalForcedTransfert', 0xffff0067: 'Compensation', 0xffff0068: 'EmergencyStop',
        0xffff0069: 'PowerFactor', 0xffff006a: 'PeakFactor', 0xffff006b: 'ChargerType',
        0xffff006c: 'HighPositiveDCBusVoltage', 0xffff006d: 'LowPositiveDCBusVoltage',
        0xffff006e: 'HighNegativeDCBusVoltage', 0xffff006f: 'LowNegativeDCBusVoltage',
        0xffff0070: 'FrequencyRangeTransfer', 0xffff0071: 'WiringFaultDetection',
        0xffff0072: 'ControlStandby', 0xffff0073: 'ShortCircuitTolerance', 0xffff0074: 'VoltageTooHigh',
        0xffff0075: 'VoltageTooLow', 0xffff0076: 'DCBusUnbalanced', 0xffff0077: 'FanFailure',
        0xffff0078: 'WiringFault', 0xffff0079: 'Floating', 0xffff007a: 'OverCurrent',
        0xffff007b: 'RemainingActivePower', 0xffff007c: 'Energy', 0xffff007d: 'Threshold',
        0xffff007e: 'OverThreshold', 0xffff0080: 'Sensor', 0xffff0081: 'LowHumidity',
        0xffff0082: 'HighHumidity', 0xffff0083: 'LowTemperature', 0xffff0084: 'HighTemperature',
        0xffff0085: 'ECOControl', 0xffff0086: 'Efficiency', 0xffff0087: 'ABMEnable',
        0xffff0088: 'NegativeCurrent', 0xffff0089: 'AutomaticStart', 0xffff0090: 'Count',
        0xffff0091: 'Timer', 0xffff0092: 'Interval', 0xffff0093: 'TimerExpired', 0xffff0094: 'Mode',
        0xffff0095: 'Country', 0xffff0096: 'State', 0xffff0097: 'Time', 0xffff0098: 'Code',
        0xffff0099: 'DataValid', 0xffff009a: 'ToggleTimer', 0xffff009b: 'BypassTransferDelay',
        0xffff009c: 'HysteresisVoltageTransfer', 0xffff009d: 'SlewRate', 0xffff00a0: 'PDU',
        0xffff00a1: 'Breaker', 0xffff00a2: 'BreakerID', 0xffff00a3: 'OverVoltage', 0xffff00a4: 'Tripped',
        0xffff00a5: 'OverEnergy', 0xffff00a6: 'OverHumidity', 0xffff00a7: 'ConfigurationReset',
        0xffff00a8: 'Level', 0xffff00a9: 'PDUType', 0xffff00aa: 'ReactivePower', 0xffff00ab: 'Pole',
        0xffff00ac: 'PoleID', 0xffff00ad: 'Reset', 0xffff00ae: 'WatchdogReset', 0xffff00ba: 'iDesignator',
        0xffff00e0: 'COPIBridge', 0xffff00e1: 'Gateway', 0xffff00e5: 'System', 0xffff00e9: 'Status',
        0xffff00f0: 'iModel', 0xffff00f1: 'iVersion', 0xffff00f2: 'iTechnicalLevel',
        0xffff00f3: 'iPartNumber', 0xffff00f4: 'iReferenceNumber', 0xffff00f5: 'iGang',
    },
    'openups': {
        0x00000001: 'Cell1', 0x00000002: 'Cell2', 0x00000003: 'Cell3', 0x00000004: 'Cell4',
        0x00000005: 'Cell5', 0x00000006: 'Cell6',
    },
    'powercom': {
        0x00020004: 'PowercomUPS', 0x00020010: 'PowercomBatterySystem',
        0x00020016: 'PowercomPowerConverter', 0x0002001a: 'PowercomInput', 0x0002001c: 'PowercomOutput',
        0x00020030: 'PowercomVoltage', 0x00020032: 'PowercomFrequency', 0x00020035: 'PowercomPercentLoad',
        0x00020036: 'PowercomTemperature', 0x00020056: 'PowercomDelayBeforeStartup',
        0x00020057: 'PowercomDelayBeforeShutdown', 0x00020058: 'PowercomTest',
        0x00020068: 'PowercomShutdownRequested', 0x00020081: 'PowercomInternalChargeController',
        0x00020082: 'PowercomPrimaryBatterySupport', 0x00020083: 'PowercomDesignCapacity',
        0x00020084: 'PowercomSpecificationInfo', 0x00020085: 'PowercomManufacturerDate',
        0x00020086: 'PowercomSerialNumber', 0x00020087: 'PowercomManufacturerName', 0x0084002f: 'POWERCOM1',
        0xff860060: 'POWERCOM2', 0xff860080: 'POWERCOM3', 0x00ff0056: 'PCMDelayBeforeStartup',
        0x00ff0057: 'PCMDelayBeforeShutdown',
    },
    'powervar': {
        0xff000001: 'POWERVAR1',
    },
    'tripplite': {
        0xffff0010: 'TLCustom', 0xffff0056: 'TLDelayBeforeStartup', 0xffff0057: 'TLLowVoltageTransferMax',
        0xffff0058: 'TLLowVoltageTransferMin', 0xffff0059: 'TLHighVoltageTransferMax',
        0xffff005a: 'TLHighVoltageTransferMin', 0xffff007a: 'OutletState', 0xffff007b: 'OutletCount',
        0xffff007c: 'UPSFirmwareVersion', 0xffff007d: 'CommunicationProtocolVersion',
        0xffff007e: 'CommunicationVersion', 0xffff007f: 'iUPSPartNumber', 0xffff0080: 'AutoOnDelay',
        0xffff0092: 'TLWatchdog', 0xffff0095: 'TLOutletsAvailableMask', 0xffff0096: 'TLOutletsStatusMask',
        0x00840044: 'TLCharging', 0x00840045: 'TLDischarging', 0x0084004b: 'TLNeedReplacement',
        0x008400d0: 'TLACPresent',
    },
}

#: the vendors merged into :data:`NAMES`, first wins a code (the vendor pages most UPSes use;
#: other subdrivers reuse these pages for their own names, e.g. PowerCOM's ff860080 on APC's
#: page, and get them from :func:`names_for`)
VENDOR_ORDER = ("apc", "mge", "cps", "tripplite")

NAMES: dict[int, str] = dict(STANDARD)
for _vendor in VENDOR_ORDER:
    for _usage, _name in VENDOR_TABLES[_vendor].items():
        NAMES.setdefault(_usage, _name)

#: every known name (case-folded) -> usage; vendor names never collide with each other
USAGES: dict[str, int] = {}
for _table in (*VENDOR_TABLES.values(), STANDARD):
    for _usage, _name in _table.items():
        USAGES.setdefault(_name.lower(), _usage)

_INDEX_PAGE = 0x00FF0000  # NUT's index node of a vendor-type collection


def names_for(subdriver: str | None) -> dict[int, str]:
    """Usage names as NUT's ``subdriver`` resolves them (unknown or None: standard names only)."""
    return {**STANDARD, **VENDOR_TABLES.get(subdriver or "", {})}


def usage_name(usage: int, names: Mapping[int, str] | None = None) -> str:
    """NUT's path component for ``usage``: its name, ``[n]`` for an index node, else 8 hex digits."""
    name = (NAMES if names is None else names).get(usage)
    if name is not None:
        return name
    if usage & 0xFFFF0000 == _INDEX_PAGE:
        return f"[{usage & 0xFFFF}]"
    return f"{usage & 0xFFFFFFFF:08x}"


def usage_of(name: str, names: Mapping[int, str] | None = None) -> int | None:
    """The usage a path component names (case-insensitive like NUT), 8 hex digits, or ``[n]``."""
    if names is not None:
        for usage, known in names.items():
            if known.lower() == name.lower():
                return usage
    elif (found := USAGES.get(name.lower())) is not None:
        return found
    if name.startswith("[") and name.endswith("]") and name[1:-1].isdigit():
        return _INDEX_PAGE | (int(name[1:-1]) & 0xFFFF)
    if 0 < len(name) <= 8 and all(c in "0123456789abcdefABCDEF" for c in name):
        return int(name, 16)
    return None
