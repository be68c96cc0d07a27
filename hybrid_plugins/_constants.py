"""The adapters' identifiers: HLC's transfer syntax UID, MIME type and file extension.

A leaf module (nothing imported), so that the package, its start-up hook and the
plugins all take these from one place without importing each other.
"""

#: Private DICOM Transfer Syntax UID of HLC-compressed Pixel Data, as a plain string
#: (a UUID under the 2.25 root, generated once; never change it: files in the wild
#: carry it). Give pydicom ``HLC_TRANSFER_SYNTAX_UID`` instead.
HLC_UID_STRING = "2.25.220595007392293823743213383891695951969"

#: MIME type and file extension registered with Pillow.
HLC_MIME_TYPE = "image/x-hlc"
HLC_EXTENSION = ".hlc"
